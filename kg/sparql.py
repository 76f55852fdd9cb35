"""SPARQL terms and query texts: every IRI and literal enters a query as a pyoxigraph term.

A `Select` is a query text and the terms it reads: ``values`` fill its ``VALUES ?x {}`` slots (a
batch of entities, a list of predicates), ``bind`` gives single variables one term each. Terms
reach the text only through pyoxigraph's serialiser (``str(NamedNode)``, ``str(Literal)``),
which validated them when they were made and escapes them; the embedded store takes ``bind`` as
real substitutions. No string is pasted in: `iri` refuses one that is not an IRI.

`Queries` holds the texts `TripleStore` sends (kg/triplestore.py), made once per KG config.
Edges are triples whose object is an IRI and whose predicate is not a type predicate (as in the
compiled graph); a FILTER inside each UNION branch runs 3x faster on Oxigraph than one outside.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pyoxigraph import Literal, NamedNode

from kg.config import KGConfig
from kg.errors import InvalidIRIError

Term = NamedNode | Literal
Row = dict[str, dict[str, str]]  # one SPARQL JSON result row: var -> {type, value, ...}
_SLOT = re.compile(r"VALUES \?(\w+) \{\}")


def iri(value: str) -> NamedNode:
    """``value`` as an IRI term; `InvalidIRIError` names it when it is not an absolute IRI."""
    try:
        return NamedNode(value)
    except ValueError as e:
        raise InvalidIRIError(
            f"{value!r} is not an IRI ({e}); pass an absolute IRI such as "
            'http://example.org/x, with spaces and <>"{}|^`\\ percent-encoded'
        ) from None


def is_iri(value: str) -> bool:
    try:
        NamedNode(value)
    except ValueError:
        return False
    return True


def iris(values: Iterable[str]) -> list[NamedNode]:
    return [iri(v) for v in values]


def one_of(var: str, terms: Sequence[Term], negate: bool = False) -> str:
    """``?p IN (<a>, <b>)`` (or ``NOT IN``): a condition for FILTER."""
    return f"?{var} {'NOT IN' if negate else 'IN'} ({', '.join(map(str, terms))})"


@dataclass(frozen=True)
class Select:
    """A SELECT query and the terms it reads.

    Args:
        text: the query; each variable of ``values`` has one ``VALUES ?name {}`` slot in it.
        values: the terms of each slot (a batch: one solution per term).
        bind: one term per variable, which the query must project (pyoxigraph substitutes
            only projected variables); sent to an HTTP endpoint as a ``VALUES`` row.
    """

    text: str
    values: Mapping[str, Sequence[Term]] = field(default_factory=dict)
    bind: Mapping[str, Term] = field(default_factory=dict)

    def given(self, **values: Sequence[Term]) -> Select:
        """This query with more slots filled."""
        return replace(self, values={**self.values, **values})

    def page(self, limit: int, offset: int) -> Select:
        """This (``ORDER BY``) query's rows ``offset`` to ``offset + limit``."""
        return replace(self, text=f"{self.text} LIMIT {int(limit)} OFFSET {int(offset)}")

    def render(self, inline_bind: bool = True) -> str:
        """The text with the slots filled (and, if ``inline_bind``, ``bind`` as slots opening
        the WHERE clause). Terms are joined to the template, never searched, so a literal that
        reads like a slot stays a literal."""
        text, terms = self.text, dict(self.values)
        if inline_bind and self.bind:
            if "WHERE {" not in text:
                raise ValueError(f"a query with bound variables needs a WHERE clause: {text}")
            slots = " ".join(f"VALUES ?{name} {{}}" for name in self.bind)
            text = text.replace("WHERE {", f"WHERE {{ {slots}", 1)
            terms |= {name: [term] for name, term in self.bind.items()}
        pieces = _SLOT.split(text)  # text, name, text, name, ..., text
        names = pieces[1::2]
        if sorted(names) != sorted(terms):
            raise ValueError(f"slots {names} of the query do not match its terms {list(terms)}")
        out = [pieces[0]]
        for name, after in zip(names, pieces[2::2], strict=True):
            out += [f"VALUES ?{name} {{ ", " ".join(map(str, terms[name])), " }", after]
        return "".join(out)


class Queries:
    """The queries of a `TripleStore` under one KG config (which predicates carry names,
    descriptions and types; whether types are edges)."""

    def __init__(self, config: KGConfig):
        skip = iris(() if config.type_edges else config.type_predicates)  # type facts: not edges
        edge_p = f" && {one_of('p', skip, negate=True)}" if skip else ""
        not_type = f" FILTER({one_of('p', skip, negate=True)})" if skip else ""
        names = iris(dict.fromkeys(config.label_predicates + config.alias_predicates))
        self.edges = Select(
            "SELECT ?v ?p ?o ?out WHERE { VALUES ?v {} "
            f"{{ ?v ?p ?o FILTER(isIRI(?o){edge_p}) BIND(true AS ?out) }} UNION "
            f"{{ ?o ?p ?v FILTER(isIRI(?o){edge_p}) BIND(false AS ?out) }} }}"
        )
        self.degrees = Select(
            "SELECT ?v (COUNT(*) AS ?n) WHERE { VALUES ?v {} "
            f"{{ ?v ?p ?o FILTER(!isLiteral(?o)) }} UNION {{ ?s ?p ?v }}{not_type} }} GROUP BY ?v"
        )
        # the nodes as a sub-select: Oxigraph hash-joins it (6x faster than ?o IN (...))
        self.edges_among = Select(
            "SELECT ?v ?p ?o WHERE { { SELECT ?o WHERE { VALUES ?o {} } } "
            f"VALUES ?v {{}} ?v ?p ?o{not_type} }}"
        )
        self.facts = _facts(config)
        self.literals = Select("SELECT ?p ?o WHERE { VALUES ?v {} ?v ?p ?o FILTER(isLiteral(?o)) }")
        self.exists = Select("SELECT ?v WHERE { { ?v ?p ?o } UNION { ?s ?p ?v } } LIMIT 1")
        self.names = Select(
            "SELECT ?v ?p ?o WHERE { VALUES ?p {} ?v ?p ?o FILTER(isLiteral(?o)) }", {"p": names}
        )
        self.all_names = Select(
            "SELECT ?s ?p ?o WHERE { VALUES ?p {} ?s ?p ?o "
            "FILTER(isIRI(?s) && isLiteral(?o)) } ORDER BY ?s ?p ?o",
            {"p": names},
        )
        self.by_name = Select(
            "SELECT DISTINCT ?s ?o ?name WHERE { VALUES ?p {} ?s ?p ?o "
            "FILTER(isIRI(?s) && isLiteral(?o) && LCASE(STR(?o)) = ?name) }",
            {"p": names},
        )
        types = iris(config.type_predicates)
        self.types = Select(
            "SELECT DISTINCT ?s ?o WHERE { ?s ?p ?o FILTER(isIRI(?s) && isIRI(?o) && "
            f"{one_of('p', types) if types else 'false'}) }} ORDER BY ?s ?o"
        )
        self.relations = Select(
            f"SELECT DISTINCT ?p WHERE {{ ?s ?p ?o FILTER(isIRI(?o){edge_p}) }}"
        )
        self._edge_p = edge_p

    def links(self, targets: Sequence[NamedNode]) -> Select:
        """Which of ``targets`` each of a batch ``?v`` shares an edge with."""
        return Select(
            "SELECT DISTINCT ?v ?t WHERE { VALUES ?v {} { ?v ?p ?t } UNION { ?t ?p ?v } "
            f"FILTER({one_of('t', targets)}{self._edge_p}) }}"
        )


def _facts(config: KGConfig) -> Select | None:
    """Names, descriptions and types of a batch ``?v``, one branch per predicate with the
    predicate written out: Oxigraph then reads each entity's few facts from its index instead
    of scanning all its triples. None when the config names no such predicate."""
    c = config
    literal_p = iris(
        dict.fromkeys(c.label_predicates + c.alias_predicates + c.description_predicates)
    )
    branches = [f"{{ ?v {p} ?o FILTER(isLiteral(?o)) BIND({p} AS ?p) }}" for p in literal_p]
    if not c.type_edges:
        branches += [
            f"{{ ?v {p} ?o FILTER(isIRI(?o)) BIND({p} AS ?p) }}" for p in iris(c.type_predicates)
        ]
    if not branches:
        return None
    return Select("SELECT ?v ?p ?o WHERE { VALUES ?v {} " + " UNION ".join(branches) + " }")
