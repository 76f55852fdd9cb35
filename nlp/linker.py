"""The spaCy component `kg_linker`: links spans of a text to entities of a KnowledgeGraph.

    import spacy, nlp.linker
    pipe = spacy.blank("en")
    pipe.add_pipe("kg_linker", config={"kg": "out/kg"})      # a compiled KG folder
    doc = pipe("I have a skin rash and pain in my joints")
    [(e.text, e.kb_id_, e._.kg_candidates) for e in doc._.kg_entities]

or, from a graph in memory, ``pipe = nlp.linker.from_kg(graph)``. Each linked span carries its
IRI in ``Span.kb_id_`` and the ranked ``(iri, score)`` list in ``Span._.kg_candidates``; the spans
go to ``doc.spans[spans_key]`` and, where they overlap no existing entity, to ``doc.ents``.

Semantic candidates (opt-in, off by default): ``config={"kg": ..., "semantic": {"mode": "static",
"threshold": 0.7, "cache_dir": "out/semantic"}}`` also links paraphrases that share no word with
an alias ("exhausted" -> fatigue) by word embeddings from a small sentence encoder (see
nlp/semantic.py: about 30 s of one-off work without a cache, then 0.35-0.45x the texts/s).
Link many texts with ``pipe.pipe(texts)``: it embeds each batch's new words together.

Alias tables (``config={"kg": ..., "aliases": "aliases.tsv"}``, or `KGLinker.set_aliases`) add
names the KG lacks: a user's synonyms, or aliases learned from labelled texts with
``kgfuse aliases learn`` (nlp/alias_learning.py). Their names are matched as written or by lemma,
in their word order (candidate kind ``table``, nlp/candidates.py), and saved with the pipeline.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import spacy
from confection import ConfigValidationError
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans, minibatch

import kg as kglib
from kg.graph import KnowledgeGraph
from kg.protocol import Graph
from nlp import linker_index
from nlp.alias_table import AliasTable
from nlp.candidates import CandidateGenerator, Mention
from nlp.disambiguation import Disambiguator, Weights
from nlp.errors import LinkingError
from nlp.keys import Lemmatizer
from nlp.linker_settings import LINKER_DEFAULTS

if TYPE_CHECKING:
    from nlp.semantic import SemanticCandidates

KG_FOLDER = "kg"
SEMANTIC_FOLDER = "semantic"  # the semantic vectors, beside the KG, when semantic is on
ALIAS_FILE = "aliases.tsv"  # the alias table, beside the KG, when there is one
INDEX_FOLDER = "index"  # the linker's index (nlp/linker_index.py), beside the KG

if not Span.has_extension("kg_candidates"):
    Span.set_extension("kg_candidates", default=None)
SPANS_KEY_DATA = "kg_linker.spans_key"  # doc.user_data: where the linker put its spans


def _kg_entities(doc: Doc) -> list[Span]:
    """The linked spans, under the ``spans_key`` the linker that ran used (default "kg")."""
    return list(doc.spans.get(doc.user_data.get(SPANS_KEY_DATA, "kg"), []))


if not Doc.has_extension("kg_entities"):
    Doc.set_extension("kg_entities", getter=_kg_entities)


@Language.factory(
    "kg_linker",
    assigns=["doc.ents", "doc.spans", "span._.kg_candidates"],
    default_config={
        "kg": None,
        **LINKER_DEFAULTS.spacy_config(),
        "weights": {"string": 0.5, "prior": 0.1, "context": 0.2, "coherence": 0.2},
        "semantic": None,
        "aliases": None,
        "index": None,
    },
)
def make_kg_linker(
    nlp: Language,
    name: str,
    kg: Any,  # a path (str or Path) or None; checked by KGLinker, which names the fix
    threshold: float,
    max_candidates: int,
    weights: dict[str, float],
    types: list[str],
    min_alias_length: int,
    stop_aliases: list[str],
    fuzzy_threshold: float,
    window_slack: int,
    head_match: bool,
    partial_coverage: float,
    semantic: dict[str, Any] | None,
    aliases: str | None,
    index: str | None,
    link_classes: bool,
    max_length: int,
    overwrite_ents: bool,
    spans_key: str,
) -> KGLinker:
    return KGLinker(
        nlp,
        name,
        kg=kg,
        threshold=threshold,
        max_candidates=max_candidates,
        weights=weights,
        types=types,
        min_alias_length=min_alias_length,
        stop_aliases=stop_aliases,
        fuzzy_threshold=fuzzy_threshold,
        window_slack=window_slack,
        head_match=head_match,
        partial_coverage=partial_coverage,
        semantic=semantic,
        aliases=aliases,
        index=index,
        link_classes=link_classes,
        max_length=max_length,
        overwrite_ents=overwrite_ents,
        spans_key=spans_key,
    )


class KGLinker:
    """Links text spans to KG entities. See the module docstring and `make_kg_linker`.

    Args:
        kg: path of a compiled KG folder (or a triples file); loaded on first use. May be None
            when the graph comes from `set_kg` or `from_disk`.
        threshold: minimum final score of a link.
        max_candidates: ranked candidates kept per span (in ``Span._.kg_candidates``).
        weights: of the disambiguation signals (see nlp/disambiguation.py).
        types: link only entities with one of these rdf:type IRIs (empty: any).
        link_classes: also link entities that are the type of others (e.g. "Symptom" itself).
        min_alias_length, stop_aliases, fuzzy_threshold, window_slack, head_match,
            partial_coverage: candidate generation settings (see nlp/candidates.py).
        semantic: None (off), or keyword arguments of `nlp.semantic.SemanticCandidates` (keys
            in `nlp.semantic.CONFIG_KEYS`, e.g. ``{"mode": "static", "threshold": 0.7,
            "cache_dir": "out/semantic"}``; ``{}``: its defaults) to add embedding candidates
            for the words no string path covers. In a spaCy config, ``encoder`` may name a
            registered function: ``{"@misc": "my_encoder.v1"}``.
        aliases: path of an alias table (nlp/alias_table.py) whose names are matched too;
            None: none.
        index: folder of the linker's index (alias tables, n-gram indexes and disambiguation
            statistics, nlp/linker_index.py): loaded when it was built for this KG and these settings,
            else built and written there. None: built in memory each time.
        max_length: texts longer than this many characters are refused.
        overwrite_ents: let linked spans replace overlapping entities already in ``doc.ents``.
        spans_key: the ``doc.spans`` key of the linked spans.
    """

    def __init__(
        self, nlp: Language, name: str = "kg_linker", *, kg: str | None = None, **config: Any
    ):
        self.nlp = nlp
        self.name = name
        if kg is not None and not isinstance(kg, str | os.PathLike):
            fix = (
                ": compile several triples files into one folder first, "
                "kg.load([...]).save('out/kg'), and give that folder"
                if isinstance(kg, list | tuple)
                else ""
            )
            raise LinkingError(
                "the kg_linker's 'kg' is the path of a compiled KG folder or a triples file, "
                f"not {type(kg).__name__} {kg!r}{fix}"
            )
        self.kg_path = None if kg is None else str(kg)
        self.threshold = float(config.get("threshold", LINKER_DEFAULTS.threshold))
        self.max_candidates = int(config.get("max_candidates", LINKER_DEFAULTS.max_candidates))
        self.weights = Weights.from_dict(config.get("weights"))
        self.types = list(config.get("types", LINKER_DEFAULTS.types))
        self.min_alias_length = int(
            config.get("min_alias_length", LINKER_DEFAULTS.min_alias_length)
        )
        self.stop_aliases = frozenset(config.get("stop_aliases", LINKER_DEFAULTS.stop_aliases))
        self.fuzzy_threshold = float(config.get("fuzzy_threshold", LINKER_DEFAULTS.fuzzy_threshold))
        self.window_slack = int(config.get("window_slack", LINKER_DEFAULTS.window_slack))
        self.head_match = bool(config.get("head_match", LINKER_DEFAULTS.head_match))
        self.partial_coverage = float(
            config.get("partial_coverage", LINKER_DEFAULTS.partial_coverage)
        )
        semantic = config.get("semantic")
        self.semantic: dict[str, Any] | None = (
            dict(semantic) if isinstance(semantic, dict) else semantic
        )
        aliases = config.get("aliases")
        self.aliases_path = str(aliases) if aliases else None
        self.alias_table: AliasTable | None = None
        index = config.get("index")
        self.index_path = str(index) if index else None
        self.index_loaded = False  # whether the last build read its index from disk
        self.link_classes = bool(config.get("link_classes", LINKER_DEFAULTS.link_classes))
        self.max_length = int(config.get("max_length", LINKER_DEFAULTS.max_length))
        self.overwrite_ents = bool(config.get("overwrite_ents", LINKER_DEFAULTS.overwrite_ents))
        self.spans_key = str(config.get("spans_key", LINKER_DEFAULTS.spans_key))
        self._check()
        self.kg: KnowledgeGraph | None = None  # the names the linker indexes
        # the graph given, when its names came from elsewhere (a triple store's, in pages)
        self.store: Graph | None = None
        self._generator: CandidateGenerator | None = None
        self._disambiguator: Disambiguator | None = None

    def _check(self) -> None:
        problems = []
        if not 0.0 <= self.threshold <= 1.0:
            problems.append(f"'threshold' must be in [0, 1] (got {self.threshold})")
        if not 0.0 < self.partial_coverage <= 1.0:
            problems.append(
                f"'partial_coverage' must be in (0, 1], 1.0 to turn partial matching off "
                f"(got {self.partial_coverage})"
            )
        if not 0.0 < self.fuzzy_threshold <= 1.0:
            problems.append(f"'fuzzy_threshold' must be in (0, 1] (got {self.fuzzy_threshold})")
        if self.max_candidates < 1:
            problems.append(f"'max_candidates' must be at least 1 (got {self.max_candidates})")
        if self.max_length < 1:
            problems.append(f"'max_length' must be at least 1 (got {self.max_length})")
        if self.semantic is not None and not isinstance(self.semantic, dict):
            problems.append(
                "'semantic' must be None (off) or a dict of options such as "
                f"{{'mode': 'static', 'threshold': 0.7}} (got {self.semantic!r})"
            )
        elif self.semantic is not None:
            from nlp.semantic import config_problems

            problems.extend(f"'semantic': {p}" for p in config_problems(self.semantic))
        if problems:
            raise LinkingError("invalid kg_linker config: " + "; ".join(problems))

    # ----- the graph -----
    def set_kg(self, graph: Graph) -> KGLinker:
        """Use ``graph`` (builds the alias tables now): the linker indexes its names graph (a
        triple store exports its names in pages) and disambiguates with its edges.

        Raises:
            TypeError: ``graph`` is a path or anything else that is not a graph.
        """
        if not hasattr(type(graph), "names_graph"):
            fix = (
                f": pass kg.open({str(graph)!r}) or kg.load({str(graph)!r})"
                if isinstance(graph, str | os.PathLike)
                else ""
            )
            raise TypeError(
                f"set_kg takes a graph (kg.load, kg.open), not {type(graph).__name__} "
                f"{graph!r}{fix}"
            )
        self.kg = graph.names_graph
        self.store = None if self.kg is graph else graph
        self._build()
        return self

    def set_aliases(self, table: AliasTable | str | Path | None) -> KGLinker:
        """Match the names of ``table`` (an `AliasTable` or its file) too; None: no table.
        Rebuilds the alias tables when the graph is already set."""
        if table is not None and not isinstance(table, AliasTable | str | os.PathLike):
            raise TypeError(
                f"set_aliases takes an AliasTable, the path of its TSV file or None, not "
                f"{type(table).__name__} {table!r}"
            )
        loaded = AliasTable.load(table) if isinstance(table, str | os.PathLike) else table
        before = self.alias_table, self.aliases_path
        self.alias_table, self.aliases_path = loaded, None
        if self.kg is not None:
            try:
                self._build()
            except Exception:
                self.alias_table, self.aliases_path = before  # a rejected table is not kept
                raise
        return self

    def _ready(self) -> tuple[KnowledgeGraph, CandidateGenerator, Disambiguator]:
        if self.kg is None:
            if self.kg_path is None:
                raise LinkingError(
                    "the kg_linker has no knowledge graph: add it with config={'kg': 'PATH'} "
                    "(a compiled KG folder) or call set_kg(graph)"
                )
            path = Path(self.kg_path)
            if not path.exists():
                raise LinkingError(
                    f"the kg_linker's KG {path} does not exist; compile it with `kgfuse kg load FILES -o {path}`"
                )
            self.set_kg(kglib.open_or_load(path))
        assert (
            self.kg is not None and self._generator is not None and self._disambiguator is not None
        )
        return self.kg, self._generator, self._disambiguator

    def _build(self) -> None:
        graph = self.kg
        assert graph is not None
        if graph.num_entities and not (np.diff(graph.labels.offsets) > 0).any():
            warnings.warn(
                "the KG has no labels (rdfs:label, skos:prefLabel, ...): the linker matches IRI "
                "local names instead; add labels or pass --label-predicate when compiling",
                stacklevel=3,
            )
        eligible = set(range(graph.num_entities))
        if not self.link_classes:
            eligible -= set(graph.type_ids.tolist())
        if self.types:
            wanted = {graph.entity_id(t) for t in self.types if graph.has_entity(t)}
            if not wanted:
                raise LinkingError(
                    f"none of the types {self.types} is an entity of the KG; check the IRIs"
                )
            eligible = {e for e in eligible if wanted & set(graph.types_of(e))}
        if self.alias_table is None and self.aliases_path is not None:
            self.alias_table = AliasTable.load(self.aliases_path)
        table_names = self.alias_table.resolve(graph) if self.alias_table is not None else None
        semantic = None
        if self.semantic is not None:
            from nlp.semantic import SemanticCandidates  # numpy only; the encoder loads on use

            semantic = SemanticCandidates(graph, eligible, self.nlp.make_doc, **self.semantic)
        folder = Path(self.index_path) if self.index_path else None
        stale = linker_index.usable(folder, self, graph.fingerprint) if folder else "no index"
        if folder is not None and stale is not None and folder.exists():
            linker_index.warn_stale(stale)
        try:
            self._make(graph, eligible, table_names, semantic, folder if stale is None else None)
            self.index_loaded = stale is None
        except (OSError, ValueError) as e:  # a damaged index: build it anew
            linker_index.warn_stale(f"the linker index in {folder} is unreadable ({e})")
            self._make(graph, eligible, table_names, semantic, None)
            self.index_loaded, stale = False, "unreadable"
        if folder is not None and stale is not None:
            try:
                linker_index.save_index(self, folder)
            except OSError as e:
                warnings.warn(f"could not write the linker index to {folder} ({e})", stacklevel=3)

    def _make(
        self,
        graph: KnowledgeGraph,
        eligible: set[int],
        table_names: dict[int, list[str]] | None,
        semantic: SemanticCandidates | None,
        index: Path | None,
    ) -> None:
        """The candidate generator and disambiguator; their indexes read from ``index``."""
        self._generator = CandidateGenerator(
            graph,
            self.nlp.make_doc,
            Lemmatizer(self.nlp.lang or "en"),
            eligible,
            self,  # its matching settings (`nlp.candidates.MatchSettings`)
            semantic=semantic,
            table_names=table_names,
            indexes=index,
        )
        ambiguous = self._generator.ambiguous
        self._disambiguator = Disambiguator(
            graph if self.store is None else self.store, self.weights, ambiguous, index, names=graph
        )

    @property
    def semantic_candidates(self) -> SemanticCandidates | None:
        """The semantic candidate generator; None when ``semantic`` is off. Loads the KG."""
        if self.semantic is None:
            return None
        return self._ready()[1].semantic

    # ----- linking -----
    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 256) -> Iterator[Doc]:
        """Link a stream of Docs (what ``nlp.pipe`` calls). With semantic candidates on, the
        new words of each batch are embedded together first: much faster than one by one."""
        handle = self.nlp.default_error_handler
        for docs in minibatch(stream, size=batch_size):
            try:
                semantic = self.semantic_candidates
                if semantic is not None:
                    semantic.add_words(docs)
            except Exception as e:
                handle(self.name, self, docs, e)
                continue
            for doc in docs:
                try:
                    linked = self(doc)
                except Exception as e:
                    handle(self.name, self, [doc], e)
                    continue
                yield linked

    def __call__(self, doc: Doc) -> Doc:
        if len(doc.text) > self.max_length:
            raise LinkingError(
                f"text of {len(doc.text):,} characters is over the linker's max_length "
                f"({self.max_length:,}); split it or raise max_length"
            )
        graph, generator, disambiguator = self._ready()
        mentions = generator.generate(doc) if len(doc) else []
        ranked = disambiguator.rank(doc.text, mentions)
        spans = []
        for mention, scores in zip(mentions, ranked, strict=True):
            best_entity, best_score = scores[0]
            if best_score < self.threshold:
                continue
            span = self._span(doc, mention, graph, best_entity)
            span._.kg_candidates = [(graph.iri(e), s) for e, s in scores[: self.max_candidates]]
            spans.append((span, best_score))
        chosen = _longest_best(spans)
        doc.spans[self.spans_key] = chosen
        if self.spans_key != "kg":  # doc._.kg_entities reads it there
            doc.user_data[SPANS_KEY_DATA] = self.spans_key
        existing = list(doc.ents)  # reading doc.ents walks every token: once is enough
        if not existing:
            doc.ents = chosen
        elif self.overwrite_ents:
            kept = [e for e in existing if not any(_overlap(e, s) for s in chosen)]
            doc.ents = filter_spans(kept + chosen)
        else:
            doc.ents = existing + [s for s in chosen if not any(_overlap(e, s) for e in existing)]
        return doc

    def _span(self, doc: Doc, mention: Mention, graph: KnowledgeGraph, entity: int) -> Span:
        types = graph.types_of(entity)
        label = graph.label(types[0]) if types else "ENTITY"
        return Span(doc, mention.start, mention.end, label=label, kb_id=graph.iri(entity))

    # ----- serialization (the graph travels with the pipeline) -----
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Save the graph, the alias table if any, the linker's index and, when semantic is
        on, its vectors (embedded now if need be)."""
        graph, generator, _ = self._ready()
        graph.save(Path(path) / KG_FOLDER)
        if self.alias_table is not None:
            self.alias_table.save(Path(path) / ALIAS_FILE)
        if generator.semantic is not None and SEMANTIC_FOLDER not in exclude:
            generator.semantic.save(Path(path) / SEMANTIC_FOLDER)
        if INDEX_FOLDER not in exclude:
            linker_index.save_index(self, Path(path) / INDEX_FOLDER)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> KGLinker:
        folder = Path(path) / KG_FOLDER
        if not folder.is_dir():
            raise LinkingError(
                f"{path} holds no linker KG (missing {folder}); save the pipeline again"
            )
        table = Path(path) / ALIAS_FILE  # the saved folder decides, not the config's path
        self.alias_table = AliasTable.load(table) if table.is_file() else None
        self.aliases_path = None
        index = Path(path) / INDEX_FOLDER
        self.index_path = str(index) if index.is_dir() else None
        self.set_kg(kglib.open(folder))
        semantic = self._ready()[1].semantic
        vectors = Path(path) / SEMANTIC_FOLDER
        if semantic is not None and (vectors / "meta.json").is_file():
            semantic.prepare(vectors)  # the saved vectors, where they still match
        return self


def linked_entities(doc: Doc) -> list[dict[str, Any]]:
    """The linked spans of ``doc`` as JSON-ready records: text, character offsets, IRI, type,
    score and the ranked candidates."""
    return [
        {
            "text": e.text,
            "start": e.start_char,
            "end": e.end_char,
            "iri": e.kb_id_,
            "type": e.label_,
            "score": e._.kg_candidates[0][1],
            "candidates": [{"iri": iri, "score": s} for iri, s in e._.kg_candidates],
        }
        for e in doc._.kg_entities
    ]


def _overlap(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def _longest_best(spans: list[tuple[Span, float]]) -> list[Span]:
    """Non-overlapping spans, preferring longer ones, then higher scores, then earlier ones."""
    taken: list[Span] = []
    for span, _ in sorted(spans, key=lambda ss: (-(ss[0].end - ss[0].start), -ss[1], ss[0].start)):
        if all(span.end <= t.start or span.start >= t.end for t in taken):
            taken.append(span)
    return sorted(taken, key=lambda s: s.start)


def from_kg(graph: Graph | str | Path, nlp: Language | None = None, **config: Any) -> Language:
    """A pipeline (``spacy.blank("en")`` unless given) with a `kg_linker` for ``graph`` (a
    graph, or the path of a compiled KG folder or triples file).

    Raises:
        TypeError: ``graph`` is neither a graph nor a path, or ``nlp`` is not a pipeline.
        LinkingError: an unknown or invalid setting, or a KG that cannot be read; ``nlp`` is
            then left without the component, as it was.
    """
    if nlp is not None and not isinstance(nlp, Language):
        raise TypeError(
            f"nlp is a spaCy pipeline (spacy.blank('en'), spacy.load(...)) or None, not "
            f"{type(nlp).__name__} {nlp!r}"
        )
    path = os.fspath(graph) if isinstance(graph, str | os.PathLike) else None
    if path is None and not hasattr(type(graph), "names_graph"):
        fix = "; several triples files: kg.load([...])" if isinstance(graph, list | tuple) else ""
        raise TypeError(
            "from_kg takes a graph (kg.load(...), kg.open(...)) or the path of a compiled KG "
            f"folder or triples file, not {type(graph).__name__} {graph!r}{fix}"
        )
    check_linker_config(config)
    nlp = nlp if nlp is not None else spacy.blank("en")
    settings = {**config, "kg": str(path)} if path is not None else config
    try:
        linker: KGLinker = nlp.add_pipe("kg_linker", config=settings)  # type: ignore[assignment]
    except ConfigValidationError as e:
        raise LinkingError(f"invalid kg_linker config: {settings_problems(e)}") from None
    try:
        if path is not None:
            linker._ready()
        else:
            linker.set_kg(graph)  # type: ignore[arg-type]
    except BaseException:
        nlp.remove_pipe(linker.name)  # a caller's pipeline is left as it was
        raise
    return nlp


def check_linker_config(config: dict[str, Any]) -> None:
    """Refuse a setting `from_kg` does not know (a misspelling, say), with the closest one, or
    the graph given twice.

    Raises:
        LinkingError: naming the setting and the known ones.
    """
    known = set(Language.get_factory_meta("kg_linker").default_config or {})
    if "kg" in config:
        raise LinkingError(
            f"from_kg takes the KG as its first argument: drop the 'kg' setting ({config['kg']!r})"
        )
    unknown = sorted(set(config) - known)
    if unknown:
        hints = []
        for key in unknown:
            near = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        raise LinkingError(
            f"unknown kg_linker setting(s) {', '.join(hints)}; the settings are "
            f"{', '.join(sorted(known - {'kg'}))}"
        )


def settings_problems(error: ConfigValidationError) -> str:
    """spaCy's config validation error as one line per setting, without its config dump."""
    out = []
    for problem in error.errors or []:
        loc = [str(p) for p in problem.get("loc", [])]
        key = ".".join(loc[1:] if loc[:1] == ["kg_linker"] else loc)
        msg = str(problem.get("msg", "invalid")).removeprefix("at root: ")
        if "list[" in msg and "is not" in msg:
            msg += " (pass a list, e.g. ['...'])"
        out.append(f"{key!r}: {msg}")
    return "; ".join(out) or str(error)
