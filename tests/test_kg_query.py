"""Queries: look-ups, search, neighbours, capped subgraphs and paths."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import kg

from .conftest import EX, graph_from_rows


def _ids(graph: kg.KnowledgeGraph, *names: str) -> list[int]:
    return [graph.entity_id(EX + n) for n in names]


def test_resolve_by_iri_and_by_label_ignoring_case(tiny_kg: kg.KnowledgeGraph) -> None:
    flu = tiny_kg.entity_id(EX + "flu")
    assert tiny_kg.resolve(EX + "flu") == flu
    assert tiny_kg.resolve("influenza") == flu
    assert tiny_kg.resolve("  FLU ") == flu  # an alias, case and spacing ignored


def test_an_unknown_iri_is_refused_naming_what_was_looked_up(tiny_kg: kg.KnowledgeGraph) -> None:
    relation = tiny_kg.relation_iri(0)
    assert tiny_kg.relation_id(relation) == 0
    with pytest.raises(kg.EntityNotFoundError, match=r"no entity with IRI '.*nowhere'"):
        tiny_kg.entity_id(EX + "nowhere")
    with pytest.raises(kg.EntityNotFoundError, match=r"no relation with IRI '.*nowhere'"):
        tiny_kg.relation_id(EX + "nowhere")


def test_resolve_ambiguous_label_lists_the_candidates(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(kg.AmbiguousEntityError) as info:
        tiny_kg.resolve("cold")  # Common cold's alias and chills' alias
    assert EX + "cold" in str(info.value) and EX + "chills" in str(info.value)


def test_resolve_unknown_name_suggests_near_matches(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(kg.EntityNotFoundError, match="did you mean 'fatigue'"):
        tiny_kg.resolve("fatigeu")


def test_search_exact_first_then_fuzzy_for_typos(tiny_kg: kg.KnowledgeGraph) -> None:
    exact = tiny_kg.search("Cough")
    assert exact[0].iri == EX + "cough" and exact[0].score == 1.0
    typo = tiny_kg.search("influensa")
    assert typo[0].iri == EX + "flu" and 0.3 <= typo[0].score < 1.0
    assert tiny_kg.search("   ") == []
    assert tiny_kg.search("zzzzqqq") == []


def test_neighbors_cover_both_directions(tiny_kg: kg.KnowledgeGraph) -> None:
    (cough,) = _ids(tiny_kg, "cough")
    touching = {(tiny_kg.iri(n.node), n.outgoing) for n in tiny_kg.neighbors_of(cough)}
    assert touching == {(EX + "flu", False), (EX + "cold", False), (EX + "covid", False)}


def test_subgraph_keeps_every_seed_even_beyond_the_cap(tiny_kg: kg.KnowledgeGraph) -> None:
    seeds = _ids(tiny_kg, "flu", "cold", "covid")
    sub = tiny_kg.subgraph(seeds, hops=2, max_nodes=2)
    assert sub.nodes.tolist() == seeds
    assert sub.num_seeds == 3


def test_subgraph_respects_the_cap_and_orders_by_hop(tiny_kg: kg.KnowledgeGraph) -> None:
    (flu,) = _ids(tiny_kg, "flu")
    full = tiny_kg.subgraph([flu], hops=2, max_nodes=1000)
    capped = tiny_kg.subgraph([flu], hops=2, max_nodes=6)
    assert capped.num_nodes == 6 < full.num_nodes
    assert capped.hop.tolist() == sorted(capped.hop.tolist())
    assert capped.hop.tolist()[:5] == [0, 1, 1, 1, 1]  # all 4 neighbours before any 2-hop node
    assert set(capped.nodes.tolist()) <= set(full.nodes.tolist())


def test_subgraph_prefers_nodes_that_join_several_seeds_then_specific_ones(
    tiny_kg: kg.KnowledgeGraph,
) -> None:
    flu, covid, fever = _ids(tiny_kg, "flu", "covid", "fever")
    # fever and cough both join flu and covid; fever has the lower degree (2 vs 3)
    sub = tiny_kg.subgraph([flu, covid], hops=1, max_nodes=3)
    assert sub.nodes.tolist() == [flu, covid, fever]


def test_subgraph_holds_exactly_the_triples_among_its_nodes(tiny_kg: kg.KnowledgeGraph) -> None:
    (cold,) = _ids(tiny_kg, "cold")
    sub = tiny_kg.subgraph([cold], hops=1, max_nodes=100)
    inside = set(sub.nodes.tolist())
    expected = {t for t in tiny_kg.triples() if t.subject in inside and t.object in inside}
    assert set(sub.triples()) == expected


def test_subgraph_exports_to_pyg_with_inverse_relations(tiny_kg: kg.KnowledgeGraph) -> None:
    (covid,) = _ids(tiny_kg, "covid")
    sub = tiny_kg.subgraph([covid], hops=1)
    data = sub.to_pyg()
    R = tiny_kg.num_relations
    assert data.num_nodes == sub.num_nodes
    assert data.edge_index.shape == (2, 2 * sub.num_edges)
    assert data.num_relations == 2 * R
    forward, inverse = data.edge_type[: sub.num_edges], data.edge_type[sub.num_edges :]
    assert (inverse == forward + R).all()
    assert (
        data.edge_index[:, sub.num_edges :] == data.edge_index[:, : sub.num_edges].flip(0)
    ).all()
    assert data.n_id.tolist() == sub.nodes.tolist()
    assert data.seed_mask.tolist() == [True] + [False] * (sub.num_nodes - 1)


def test_subgraph_exports_to_networkx_with_labels(tiny_kg: kg.KnowledgeGraph) -> None:
    flu, fever = _ids(tiny_kg, "flu", "fever")
    g = tiny_kg.subgraph([flu], hops=1).to_networkx()
    assert g.nodes[flu]["label"] == "Influenza" and g.nodes[flu]["seed"]
    (edge,) = g.get_edge_data(flu, fever).values()
    assert edge["label"] == "has symptom" and edge["iri"] == EX + "hasSymptom"


def test_subgraph_rejects_ids_outside_the_graph(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(kg.EntityNotFoundError):
        tiny_kg.subgraph([tiny_kg.num_entities])


def test_paths_direct_hop_ranks_first_and_every_hop_is_a_real_triple(
    tiny_kg: kg.KnowledgeGraph,
) -> None:
    flu, cough = _ids(tiny_kg, "flu", "cough")
    paths = tiny_kg.paths(flu, cough, k=5, max_hops=3)
    assert paths[0].hops == 1
    assert paths[0].text(tiny_kg) == "Influenza --has symptom--> cough"
    assert [p.hops for p in paths] == [1, 3]  # direct, and via fever and COVID-19
    for p in paths:
        assert p.hops <= 3 and p.entities[0] == flu and p.entities[-1] == cough
        assert len(set(p.entities)) == len(p.entities)  # simple
        for here, nxt, t in zip(p.entities, p.entities[1:], p.triples, strict=False):
            assert tiny_kg.has_triple(*t)
            assert {t.subject, t.object} == {here, nxt}
    assert [p.score for p in paths] == sorted((p.score for p in paths), reverse=True)


def test_paths_prefer_specific_intermediate_nodes(tiny_kg: kg.KnowledgeGraph) -> None:
    flu, covid = _ids(tiny_kg, "flu", "covid")
    two_hop = [p for p in tiny_kg.paths(flu, covid, k=5) if p.hops == 2]
    middles = [tiny_kg.iri(p.entities[1]) for p in two_hop]
    assert middles == [EX + "fever", EX + "cough"]  # fever (degree 2) before cough (degree 3)


def test_paths_none_when_unreachable_or_too_far(tiny_kg: kg.KnowledgeGraph) -> None:
    flu, anosmia, headache, hay = _ids(tiny_kg, "flu", "anosmia", "headache", "hay_fever")
    assert tiny_kg.paths(flu, anosmia) == []  # isolated node
    assert tiny_kg.paths(flu, headache) == []
    assert tiny_kg.paths(flu, hay, max_hops=2) == []  # flu-cough-cold-sneezing-hay is 4 hops
    assert tiny_kg.paths(flu, hay, max_hops=4)[0].hops == 4


def test_path_describe_gives_iris_and_labels(tiny_kg: kg.KnowledgeGraph) -> None:
    flu, virus = _ids(tiny_kg, "flu", "influenza_virus")
    (hop,) = tiny_kg.paths(flu, virus, k=1)[0].describe(tiny_kg).model_dump()["hops"]
    assert hop == {
        "subject": {"iri": EX + "flu", "label": "Influenza"},
        "predicate": {"iri": EX + "causedBy", "label": "caused by"},
        "object": {"iri": EX + "influenza_virus", "label": "influenza virus"},
    }


def _reference_subgraph(
    graph: kg.KnowledgeGraph, seeds: list[int], hops: int, cap: int
) -> list[int]:
    """The module's relevance rule written out plainly: per hop, rank the new neighbours by
    (previous-hop nodes joined desc, degree asc, id asc) and keep what fits."""
    chosen, frontier = list(dict.fromkeys(seeds)), list(dict.fromkeys(seeds))
    room = max(cap - len(chosen), 0)
    for _ in range(hops):
        if not room or not frontier:
            break
        votes: dict[int, int] = {}
        for f in frontier:
            for n in set(graph.neighbors[graph.indptr[f] : graph.indptr[f + 1]].tolist()):
                votes[n] = votes.get(n, 0) + 1
        fresh = [n for n in votes if n not in set(chosen)]
        degree = {n: int(graph.indptr[n + 1] - graph.indptr[n]) for n in fresh}
        frontier = sorted(fresh, key=lambda n: (-votes[n], degree[n], n))[:room]
        chosen += frontier
        room -= len(frontier)
    return chosen


def test_subgraph_follows_the_relevance_rule_around_hubs_and_ties(tmp_path: Path) -> None:
    rng = random.Random(0)
    for trial in range(8):
        rows = [f"hub r n{i}" for i in range(300)]  # a hub: many ties at the cap
        rows += [f"n{rng.randrange(300)} r n{rng.randrange(300)}" for _ in range(400)]
        (tmp_path / str(trial)).mkdir()
        graph = graph_from_rows("\n".join(rows), "http://example.org/g/", tmp_path / str(trial))
        seeds = [graph.entity_id("http://example.org/g/hub")]
        seeds += [graph.entity_id(f"http://example.org/g/n{rng.randrange(300)}") for _ in range(2)]
        for hops, cap in ((1, 20), (2, 40), (3, 9)):
            got = graph.subgraph(seeds, hops=hops, max_nodes=cap).nodes.tolist()
            assert got == _reference_subgraph(graph, seeds, hops, cap), (trial, hops, cap)
