"""The KG layer on the real shared data sets (../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

import kg

from .conftest import run_cli

pytestmark = pytest.mark.integration
SKB = "http://example.org/symptomkb/"


def test_symptom2disease_diseases_and_symptoms_are_labelled_entities(shared_data: Path) -> None:
    graph = kg.load(shared_data / "symptom2disease" / "kg.ttl")
    disease, symptom = graph.entity_id(SKB + "Disease"), graph.entity_id(SKB + "Symptom")
    diseases = [e for e in range(graph.num_entities) if disease in graph.types_of(e)]
    symptoms = [e for e in range(graph.num_entities) if symptom in graph.types_of(e)]
    assert (len(diseases), len(symptoms)) == (41, 131)
    assert all(graph.labels[e] for e in diseases + symptoms)
    assert graph.label(graph.resolve("Psoriasis")) == "Psoriasis"
    assert "Psoriasis is a common skin disorder" in graph.text(graph.resolve("Psoriasis"))


def test_cli_path_psoriasis_joint_pain_finds_the_has_symptom_hop(shared_data: Path) -> None:
    ttl = shared_data / "symptom2disease" / "kg.ttl"
    result = run_cli("kg", "path", "Psoriasis", "joint pain", "--kg", str(ttl))
    assert result.returncode == 0, result.stderr
    assert "Psoriasis --has symptom--> joint pain" in result.stdout


def test_symptom2disease_tsv_gives_the_same_facts_as_the_turtle(shared_data: Path) -> None:
    tsv = kg.load(shared_data / "symptom2disease" / "kg_triples.tsv")
    ttl = kg.load(shared_data / "symptom2disease" / "kg.ttl")
    assert tsv.num_triples == ttl.num_triples == 321
    fact = tsv.paths(tsv.resolve("Psoriasis"), tsv.resolve("joint pain"), k=1)[0]
    assert fact.text(tsv) == "Psoriasis --has_symptom--> joint pain"


@pytest.mark.parametrize(
    "relative",
    [
        "symptom2disease/kg.ttl",
        "pokedex/kg.nt",
        "pokedex/type_facts_known.nt",
        "pokedex/ability_descriptions.nt",
    ],
)
def test_fast_parser_index_is_identical_to_rdflib(shared_data: Path, relative: str) -> None:
    fast = kg.load(shared_data / relative, parser="oxigraph")
    reference = kg.load(shared_data / relative, parser="rdflib")
    assert fast.fingerprint == reference.fingerprint
    assert fast.num_entities > 0


def test_pokedex_files_merge_into_one_graph(shared_data: Path) -> None:
    folder = shared_data / "pokedex"
    graph = kg.load(
        [folder / "kg.nt", folder / "type_facts_known.nt", folder / "ability_descriptions.nt"]
    )
    water = graph.entity_id("http://example.org/pokekb/type/water")
    torrent = graph.resolve("Torrent")
    assert graph.description(torrent).startswith("Strengthens moves")  # ability_descriptions.nt
    wartortle = graph.resolve("Wartortle")  # Squirtle is held out: it has no type fact
    texts = [p.text(graph) for p in graph.paths(wartortle, water, k=5, max_hops=2)]
    assert texts == [
        "Wartortle --has primary type--> Water",
        "Wartortle <--evolves from-- Blastoise --has primary type--> Water",
    ]
