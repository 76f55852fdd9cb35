"""A TSV/CSV cell that is an IRI refers to an existing relation or entity: it keeps its own
label. Only a plain name becomes a label (the README: "A cell that already is an IRI is kept as
it is")."""

from __future__ import annotations

from pathlib import Path

import kg

from .conftest import EX


def test_an_iri_relation_cell_keeps_the_relation_label_of_the_rdf(
    tiny_ttl: Path, tmp_path: Path
) -> None:
    tsv = tmp_path / "more.tsv"
    tsv.write_text(f"head\trelation\ttail\n{EX}flu\t<{EX}hasSymptom>\tsore throat\n")
    alone = kg.load(tiny_ttl)
    both = kg.load([tiny_ttl, tsv])
    relation = EX + "hasSymptom"
    assert alone.relation_label(alone.relation_id(relation)) == "has symptom"
    assert both.relation_label(both.relation_id(relation)) == "has symptom"
    flu, throat = both.resolve("Influenza"), both.resolve("sore throat")
    assert [p.text(both) for p in both.paths(flu, throat, k=1)] == [
        "Influenza --has symptom--> sore throat"
    ]


def test_an_iri_entity_cell_gets_no_label_of_its_iri(tmp_path: Path) -> None:
    tsv = tmp_path / "triples.tsv"
    tsv.write_text("http://kgfuse.local/entity/Flu\ttreated by\tRest\n")
    graph = kg.load(tsv)
    flu = graph.entity_id("http://kgfuse.local/entity/Flu")
    assert graph.aliases_of(flu) == []
    assert graph.label(graph.resolve("Rest")) == "Rest"
    assert graph.relation_label(graph.relation_id("http://kgfuse.local/relation/treated_by")) == (
        "treated by"
    )
