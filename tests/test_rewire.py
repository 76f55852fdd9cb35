"""The shuffled-KG control: per-relation degrees kept, facts destroyed, seeded, reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kg
from kg.rewire import forward_triples, rewire, rewire_with_stats

from .conftest import EX

EXR = "http://example.org/rw/"


def _nt(triples: list[tuple[str, str, str]]) -> str:
    return "".join(f"<{EXR}{s}> <{EXR}{p}> <{EXR}{o}> .\n" for s, p, o in triples)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> kg.KnowledgeGraph:
    """40 species with two habitats each (of 10), a chain of evolutions, labelled nodes."""
    triples = [(f"s{i}", "lives_in", f"h{(i + d) % 10}") for i in range(40) for d in (0, 3)]
    triples += [(f"s{i}", "evolves_from", f"s{i - 1}") for i in range(1, 40) if i % 4]
    triples += [(f"s{i}", "likes", f"s{(i * 7) % 40}") for i in range(40) if (i * 7) % 40 != i]
    path = tmp_path_factory.mktemp("rewire") / "web.nt"
    labels = "".join(
        f'<{EXR}{n}> <http://www.w3.org/2000/01/rdf-schema#label> "{n.upper()}" .\n'
        for n in [f"s{i}" for i in range(40)] + [f"h{i}" for i in range(10)]
    )
    path.write_text(_nt(triples) + labels)
    return kg.load(path)


def _degrees(graph: kg.KnowledgeGraph) -> tuple[np.ndarray, np.ndarray]:
    """Out- and in-degree per (entity, relation): int64 [num_entities * num_relations] each."""
    src, rel, dst = forward_triples(graph)
    size = graph.num_entities * graph.num_relations
    out = np.bincount(src * graph.num_relations + rel, minlength=size)
    into = np.bincount(dst * graph.num_relations + rel, minlength=size)
    return out, into


def _triples(graph: kg.KnowledgeGraph) -> set[kg.Triple]:
    return set(graph.triples())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_degrees_per_relation_are_kept_in_and_out(web: kg.KnowledgeGraph, seed: int) -> None:
    shuffled, stats = rewire_with_stats(web, seed=seed)
    assert stats.dropped == 0 and shuffled.num_triples == web.num_triples
    out, into = _degrees(web)
    new_out, new_into = _degrees(shuffled)
    np.testing.assert_array_equal(new_out, out)
    np.testing.assert_array_equal(new_into, into)


def test_who_connects_to_whom_changes(web: kg.KnowledgeGraph) -> None:
    shuffled, stats = rewire_with_stats(web, seed=0)
    kept = _triples(web) & _triples(shuffled)
    assert stats.unchanged == len(kept) < web.num_triples // 2
    assert stats.protected == 0 and stats.triples == web.num_triples


def test_no_self_loops_or_duplicates_remain(web: kg.KnowledgeGraph) -> None:
    for seed in range(5):
        shuffled = rewire(web, seed=seed)
        src, rel, dst = forward_triples(shuffled)
        assert not (src == dst).any()
        assert len(set(zip(src.tolist(), rel.tolist(), dst.tolist(), strict=True))) == len(src)


def test_labels_types_attributes_and_ids_stay(tiny_kg: kg.KnowledgeGraph) -> None:
    shuffled = rewire(tiny_kg, seed=0)
    for name in ("entities", "relations", "labels", "aliases", "descriptions"):
        assert list(getattr(shuffled, name)) == list(getattr(tiny_kg, name))
    for name in ("alias_indptr", "type_indptr", "type_ids", "attribute_indptr"):
        np.testing.assert_array_equal(getattr(shuffled, name), getattr(tiny_kg, name))
    flu = tiny_kg.entity_id(EX + "flu")
    assert shuffled.attributes_of(flu) == tiny_kg.attributes_of(flu)
    assert shuffled.resolve("influenza") == flu  # the label index is rebuilt, not stale


def test_same_seed_same_graph_other_seed_other_graph(web: kg.KnowledgeGraph) -> None:
    assert rewire(web, seed=7).fingerprint == rewire(web, seed=7).fingerprint
    assert rewire(web, seed=7).fingerprint != rewire(web, seed=8).fingerprint


def test_new_fingerprint_and_source_note_original_untouched(web: kg.KnowledgeGraph) -> None:
    before = web.fingerprint
    shuffled = rewire(web, seed=3)
    assert shuffled.fingerprint != before
    assert shuffled.fingerprint == shuffled.compute_fingerprint()
    assert web.compute_fingerprint() == before
    assert shuffled.sources == [*web.sources, "rewired(seed=3, dropped=0)"]


def test_cached_structure_matches_the_new_edges(web: kg.KnowledgeGraph) -> None:
    _ = web.out_end  # fill the original's cache first
    shuffled = rewire(web, seed=0)
    rows = np.repeat(np.arange(shuffled.num_entities), shuffled.degrees())
    forward = np.bincount(
        rows[shuffled.edge_relations < shuffled.num_relations], minlength=shuffled.num_entities
    )
    np.testing.assert_array_equal(shuffled.out_end, shuffled.indptr[:-1] + forward)
    assert shuffled._scratch is not web._scratch


def test_saved_and_reopened_with_verification(web: kg.KnowledgeGraph, tmp_path: Path) -> None:
    shuffled = rewire(web, seed=0)
    reopened = kg.open(shuffled.save(tmp_path / "shuffled"), verify=True)
    assert reopened.fingerprint == shuffled.fingerprint
    assert _triples(reopened) == _triples(shuffled)


def test_protected_entities_keep_every_triple(web: kg.KnowledgeGraph) -> None:
    keep = {web.entity_id(EXR + "s5"), web.entity_id(EXR + "h2")}
    shuffled, stats = rewire_with_stats(web, seed=0, protect=keep)
    for e in keep:
        assert shuffled.neighbors_of(e) == web.neighbors_of(e)
    assert stats.protected == sum(web.degree(e) for e in keep)  # s5 and h2 share no triple
    assert _triples(shuffled) != _triples(web)


def test_unrepairable_self_loop_is_dropped_and_reported(tmp_path: Path) -> None:
    # 'mirrors' has one triple, a self-loop: no other triple to swap with
    path = tmp_path / "loop.nt"
    path.write_text(_nt([("a", "mirrors", "a"), ("a", "knows", "b"), ("b", "knows", "c")]))
    graph = kg.load(path)
    shuffled, stats = rewire_with_stats(graph, seed=0)
    assert stats.dropped == 1 and shuffled.num_triples == graph.num_triples - 1
    assert shuffled.sources[-1] == "rewired(seed=0, dropped=1)"


def test_unknown_protected_id_is_refused(web: kg.KnowledgeGraph) -> None:
    with pytest.raises(kg.EntityNotFoundError, match="protected id"):
        rewire(web, protect={web.num_entities})
