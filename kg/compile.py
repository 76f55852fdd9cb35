"""Compile a stream of triples into the integer index of a `KnowledgeGraph`.

Readers (kg/parse.py) call `add_edge` for entity-to-entity triples and `add_literal` for
triples whose object is a literal; `build` then sorts the ids (so the same graph compiles to the
same index whatever its syntax or triple order), drops duplicate triples and lays out the CSR.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from kg.config import KGConfig
from kg.graph import KnowledgeGraph
from kg.strings import StringTable


class GraphBuilder:
    """Accumulates triples; `build()` returns the compiled graph."""

    def __init__(self, config: KGConfig | None = None):
        if config is not None and not isinstance(config, KGConfig):
            raise TypeError(
                f"config is a kg.KGConfig, not {type(config).__name__}: pass "
                "kg.KGConfig(label_predicates=[...], ...) or kg.KGConfig.from_dict(settings)"
            )
        self.config = config or KGConfig()
        self.statements = 0  # triples read, of every kind
        self._entities: dict[str, int] = {}
        self._relations: dict[str, int] = {}
        self._src = array("q")
        self._rel = array("q")
        self._dst = array("q")
        self._types: list[tuple[int, int]] = []
        # labels and aliases, one row each: owner, label rank (-1: an alias), language rank
        self._names: list[str] = []
        self._name_rows = array("q")  # owner, rank, language rank, owner, ...
        self._descriptions: dict[int, list[tuple[int, int, str]]] = {}
        self._attributes: list[tuple[int, str, str, str]] = []
        self._relation_names: dict[str, str] = {}
        c = self.config
        self._label_rank = {p: i for i, p in enumerate(c.label_predicates)}
        self._alias_predicates = frozenset(c.alias_predicates)
        self._description_rank = {p: i for i, p in enumerate(c.description_predicates)}
        self._type_predicates = frozenset(c.type_predicates)
        self._languages: dict[str | None, int | None] = {}

    def entity(self, key: str) -> int:
        ents = self._entities
        i = ents.get(key)
        if i is None:
            i = ents[key] = len(ents)
        return i

    def add_edge(self, subject: str, predicate: str, obj: str) -> None:
        """A triple between two entities (IRIs or ``_:`` blank-node keys)."""
        self.add_edges([subject], [predicate], [obj])

    def add_edges(self, subjects: list[str], predicates: list[str], objects: list[str]) -> None:
        """Many entity-to-entity triples at once: the fast path for large files."""
        self.statements += len(subjects)
        ents, rels = self._entities, self._relations
        intern, rintern = ents.setdefault, rels.setdefault
        s_ids = [intern(k, len(ents)) for k in subjects]
        o_ids = [intern(k, len(ents)) for k in objects]
        if not self._type_predicates.isdisjoint(predicates):
            keep = []
            for i, p in enumerate(predicates):
                if p in self._type_predicates:
                    self._types.append((s_ids[i], o_ids[i]))
                    if not self.config.type_edges:
                        continue
                keep.append(i)
            s_ids = [s_ids[i] for i in keep]
            o_ids = [o_ids[i] for i in keep]
            predicates = [predicates[i] for i in keep]
        self._src.extend(s_ids)
        self._rel.extend([rintern(p, len(rels)) for p in predicates])
        self._dst.extend(o_ids)

    def intern(self, keys: Sequence[str]) -> np.ndarray:
        """The ids of entity ``keys`` (IRIs or ``_:`` keys), new ones numbered as they come."""
        ents = self._entities
        return np.fromiter(
            (ents.setdefault(k, len(ents)) for k in keys), dtype=np.int64, count=len(keys)
        )

    def _interned(self, keys: Sequence[str]) -> np.ndarray:
        """`intern`, remembered for the last ``keys`` list (edges and literals share one)."""
        last = getattr(self, "_last_interned", None)
        if last is None or last[0] is not keys or len(last[1]) != len(keys):
            last = self._last_interned = (keys, self.intern(keys))
        return last[1]

    def add_indexed_edges(
        self,
        entities: Sequence[str],
        subjects: np.ndarray,
        predicates: Sequence[str],
        relations: np.ndarray,
        objects: np.ndarray,
    ) -> None:
        """Entity-to-entity triples given as indexes: ``(entities[subjects[i]],
        predicates[relations[i]], entities[objects[i]])``. Interns each distinct key once, so
        its cost grows with the distinct keys, not the triples (kg/fastparse.py's output)."""
        self.statements += len(subjects)
        rels = self._relations
        ent = self._interned(entities)
        src, dst = ent[subjects], ent[objects]
        typed = [r for r, p in enumerate(predicates) if p in self._type_predicates]
        if typed:
            is_type = np.isin(relations, typed)
            self._types.extend(zip(src[is_type].tolist(), dst[is_type].tolist(), strict=True))
            if not self.config.type_edges:
                keep = ~is_type
                src, dst, relations = src[keep], dst[keep], relations[keep]
        rel = np.full(len(predicates), -1, dtype=np.int64)
        for r in np.unique(relations).tolist():  # only predicates of kept edges are relations
            rel[r] = rels.setdefault(predicates[r], len(rels))
        self._src.frombytes(src.astype(np.int64).tobytes())
        self._rel.frombytes(rel[relations].tobytes())
        self._dst.frombytes(dst.astype(np.int64).tobytes())

    def add_indexed_literals(
        self,
        entities: Sequence[str],
        subjects: np.ndarray,
        predicates: Sequence[str],
        relations: np.ndarray,
        forms: Sequence[tuple[str | None, str]],
        form_ids: np.ndarray,
        values: Sequence[str],
    ) -> None:
        """Literal triples given as indexes: ``(entities[subjects[i]], predicates[relations[i]],
        values[i])`` of language and datatype ``forms[form_ids[i]]``; the same as `add_literal`
        for each, with the predicate and form looked at once per group."""
        self.statements += len(subjects)
        ent = self._interned(entities)[subjects]
        key = relations * max(len(forms), 1) + form_ids
        order = np.argsort(key, kind="stable")
        groups, starts = np.unique(key[order], return_index=True)
        bounds = np.append(starts, len(order)).tolist()
        for g, k in enumerate(groups.tolist()):
            rows = order[bounds[g] : bounds[g + 1]].tolist()
            predicate = predicates[k // max(len(forms), 1)]
            lang, datatype = forms[k % max(len(forms), 1)]
            owners = ent[rows].tolist()
            self._add_literal_group(owners, predicate, [values[i] for i in rows], lang, datatype)

    def _add_literal_group(
        self, owners: list[int], predicate: str, values: list[str], lang: str | None, datatype: str
    ) -> None:
        """`add_literal` for literals of one predicate and form: the decisions made once."""
        label_rank = self._label_rank.get(predicate)
        desc_rank = self._description_rank.get(predicate)
        is_name = label_rank is not None or predicate in self._alias_predicates
        if not is_name and desc_rank is None:
            kind = f"@{lang}" if lang else datatype
            self._attributes.extend(
                (s, predicate, v, kind) for s, v in zip(owners, values, strict=True)
            )
            return
        lang_rank = self._language_rank(lang)
        if lang_rank is None:
            return
        values = [" ".join(v.split()) for v in values]
        if not all(values):
            kept = [k for k, v in enumerate(values) if v]
            owners, values = [owners[k] for k in kept], [values[k] for k in kept]
        if is_name:
            rank = -1 if label_rank is None else label_rank
            rows = np.empty((len(owners), 3), dtype=np.int64)
            rows[:, 0], rows[:, 1], rows[:, 2] = owners, rank, lang_rank
            self._name_rows.frombytes(rows.tobytes())
            self._names += values
            return
        assert desc_rank is not None  # neither a name nor an attribute
        descriptions = self._descriptions
        for s, value in zip(owners, values, strict=True):
            descriptions.setdefault(s, []).append((desc_rank, lang_rank, value))

    def add_literal(
        self, subject: str, predicate: str, value: str, lang: str | None, datatype: str
    ) -> None:
        """A triple whose object is a literal: a label, alias, description or attribute."""
        self.statements += 1
        s = self.entity(subject)
        label_rank = self._label_rank.get(predicate)
        if label_rank is not None or predicate in self._alias_predicates:
            lang_rank = self._language_rank(lang)
            if lang_rank is None or not value.strip():
                return
            self._names.append(" ".join(value.split()))
            self._name_rows.extend((s, -1 if label_rank is None else label_rank, lang_rank))
            return
        desc_rank = self._description_rank.get(predicate)
        if desc_rank is not None:
            lang_rank = self._language_rank(lang)
            if lang_rank is not None and value.strip():
                rank = (desc_rank, lang_rank, " ".join(value.split()))
                self._descriptions.setdefault(s, []).append(rank)
            return
        self._attributes.append((s, predicate, value, f"@{lang}" if lang else datatype))

    def _language_rank(self, lang: str | None) -> int | None:
        """Preference rank of a literal's language, None when the config rejects it (cached)."""
        try:
            return self._languages[lang]
        except KeyError:
            c = self.config
            rank = self._languages[lang] = (
                c.language_rank(lang) if c.accepts_language(lang) else None
            )
            return rank

    def name_relation(self, predicate: str, name: str) -> None:
        """Record the plain name a delimited file gave a relation (its display label)."""
        self._relation_names.setdefault(predicate, name)

    def _compile_names(self, ent_new: np.ndarray) -> tuple[list[str], list[list[str]]]:
        """Each entity's display label (best label rank, then language rank, then the smallest
        text) and its aliases (the label first, then the other names sorted), by new id. Most
        entities have one name: theirs are read off without grouping."""
        n = len(ent_new)
        labels = [""] * n
        aliases: list[list[str]] = [[] for _ in range(n)]
        names = self._names
        if not names:
            return labels, aliases
        rows = np.frombuffer(self._name_rows, dtype=np.int64).reshape(-1, 3)
        owner, rank, lang = ent_new[rows[:, 0]], rows[:, 1], rows[:, 2]
        single = np.bincount(owner, minlength=n)[owner] == 1
        at = np.flatnonzero(single)
        for k, i, r in zip(at.tolist(), owner[at].tolist(), rank[at].tolist(), strict=True):
            if r >= 0:
                labels[i] = names[k]
            aliases[i] = [names[k]]
        at = np.flatnonzero(~single)
        if not len(at):
            return labels, aliases
        at = at[np.argsort(owner[at], kind="stable")]
        starts = [*np.flatnonzero(np.diff(owner[at], prepend=-1)).tolist(), len(at)]
        at_list, owners = at.tolist(), owner[at].tolist()
        ranks, langs = rank[at].tolist(), lang[at].tolist()
        for a, b in pairwise(starts):
            texts = [names[k] for k in at_list[a:b]]
            ranked = [(ranks[j], langs[j], texts[j - a]) for j in range(a, b) if ranks[j] >= 0]
            label = min(ranked)[2] if ranked else ""
            i = owners[a]
            labels[i] = label
            aliases[i] = ([label] if label else []) + sorted(set(texts) - {label})
        return labels, aliases

    def build(self, sources: Sequence[str] = ()) -> KnowledgeGraph:
        ent_keys = list(self._entities)
        n = len(ent_keys)
        ent_order = sorted(range(n), key=ent_keys.__getitem__)
        ent_new = np.empty(n, dtype=np.int64)
        ent_new[ent_order] = np.arange(n)

        rel_keys = list(self._relations)
        rel_order = sorted(range(len(rel_keys)), key=rel_keys.__getitem__)
        rel_new = np.empty(len(rel_keys), dtype=np.int64)
        rel_new[rel_order] = np.arange(len(rel_keys))
        num_relations = len(rel_keys)

        src = ent_new[np.frombuffer(self._src, dtype=np.int64)]
        dst = ent_new[np.frombuffer(self._dst, dtype=np.int64)]
        rel = rel_new[np.frombuffer(self._rel, dtype=np.int64)]
        indptr, neighbors, edge_relations = _csr_with_inverse(src, rel, dst, n, num_relations)

        new_id = ent_new.tolist()
        labels, alias_lists = self._compile_names(ent_new)
        descriptions = [""] * n
        for old, ranked in self._descriptions.items():
            # distinct texts, best predicate and language first
            descriptions[new_id[old]] = " ".join(dict.fromkeys(v for _, _, v in sorted(ranked)))
        types = sorted({(new_id[s], new_id[o]) for s, o in self._types})
        attributes = sorted({(new_id[s], p, v, d) for s, p, v, d in self._attributes})
        sorted_relations = [rel_keys[i] for i in rel_order]
        return KnowledgeGraph(
            entities=StringTable.from_strings(ent_keys[i] for i in ent_order),
            relations=StringTable.from_strings(sorted_relations),
            relation_names=StringTable.from_strings(
                self._relation_names.get(r, "") for r in sorted_relations
            ),
            indptr=indptr,
            neighbors=neighbors,
            edge_relations=edge_relations,
            labels=StringTable.from_strings(labels),
            alias_indptr=_indptr([len(a) for a in alias_lists]),
            aliases=StringTable.from_strings(a for names in alias_lists for a in names),
            descriptions=StringTable.from_strings(descriptions),
            type_indptr=_indptr_from_owner([s for s, _ in types], n),
            type_ids=np.asarray([o for _, o in types], dtype=np.int32),
            attribute_indptr=_indptr_from_owner([s for s, *_ in attributes], n),
            attribute_predicates=StringTable.from_strings(p for _, p, _, _ in attributes),
            attribute_values=StringTable.from_strings(v for _, _, v, _ in attributes),
            attribute_datatypes=StringTable.from_strings(d for *_, d in attributes),
            config=self.config,
            sources=list(sources),
        )


def _indptr(counts: list[int]) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    if counts:
        np.cumsum(counts, out=out[1:])
    return out


def _indptr_from_owner(owners: list[int], n: int) -> np.ndarray:
    """Row pointers for items already sorted by owner id."""
    counts = np.bincount(np.asarray(owners, dtype=np.int64), minlength=n)
    return _indptr(counts.tolist())


def _csr_with_inverse(
    src: np.ndarray,
    rel: np.ndarray,
    dst: np.ndarray,
    n: int,
    num_relations: int,
    pack: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deduplicated CSR over forward edges plus one inverse edge (relation ``r + R``) each.

    Row ``v`` lists ``(relation, neighbour)`` pairs sorted by relation then neighbour:
    ``r < R`` means the triple ``(v, r, neighbour)``; ``r >= R`` means ``(neighbour, r - R, v)``.
    Sorting packs (row, relation, column) into one int64 key when it fits: one sort of a
    single key is several times faster than a three-key lexsort (``pack=None``: when it fits).
    """
    r2 = max(2 * num_relations, 1)
    if pack is None:
        pack = n * n * r2 < 2**62
    if len(src) and pack:  # in place where it can be: this is the peak of a first load
        key = src * num_relations
        key += rel
        key *= n
        key += dst
        key.sort()
        distinct = np.ones(len(key), dtype=bool)
        distinct[1:] = key[1:] != key[:-1]
        key = key[distinct]  # sorted, duplicates dropped (np.unique hashes first: slower)
        del distinct
        m = len(key)
        src, rem = np.divmod(key, num_relations * n)
        del key
        rel, dst = np.divmod(rem, n)
        del rem
        packed = np.empty(2 * m, dtype=np.int64)  # (row, relation, column) of both directions
        forward, inverse = packed[:m], packed[m:]
        np.multiply(src, r2, out=forward)
        forward += rel
        forward *= n
        forward += dst
        np.multiply(dst, r2, out=inverse)
        inverse += rel + num_relations
        inverse *= n
        inverse += src
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=n) + np.bincount(dst, minlength=n), out=indptr[1:])
        del src, rel, dst
        packed.sort()
        packed %= r2 * n
        cols_sorted = (packed % n).astype(np.int32)
        packed //= n
        return indptr, cols_sorted, packed.astype(np.int32)
    if len(src):
        order = np.lexsort((dst, rel, src))
        src, rel, dst = src[order], rel[order], dst[order]
        keep = np.ones(len(src), dtype=bool)
        keep[1:] = (src[1:] != src[:-1]) | (rel[1:] != rel[:-1]) | (dst[1:] != dst[:-1])
        src, rel, dst = src[keep], rel[keep], dst[keep]
    rows = np.concatenate([src, dst])
    cols = np.concatenate([dst, src])
    rels = np.concatenate([rel, rel + num_relations])
    order = np.lexsort((cols, rels, rows))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols[order].astype(np.int32), rels[order].astype(np.int32)
