"""Explanations: the graph paths that support a prediction, ranked by how much they matter.

Candidates are the simple paths (at most ``max_hops`` hops) inside the subgraph the model saw,
from a linked entity to the predicted class's label node (without a label map: to the nodes the
model attended to most). Each hop is a triple of the KG. A path's score is its *occlusion
attribution*: how much the predicted class's probability drops when the path's triples are
removed from the KG (all candidates are scored in one batched forward pass, with the text
encoded once). Removing a path's triples takes them out of the subgraph the GNN reads and, when
the model reads the counter features (``model.counts``), out of the KG those are counted on
(`LabelCounter.without`): both are what the model knows from the KG. The same drop is the
path's *fidelity*; `random_path_drop` gives the baseline: a random walk of the same length from
a linked entity, removed the same way.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import torch

from fusion.examples import LinkedSubgraph, collate_graphs
from fusion.model import FusionClassifier
from fusion.resources import Prepared, Resources
from kg.graph import Triple

MAX_CANDIDATES = 48


@dataclass
class ScoredPath:
    nodes: list[int]  # global entity ids, linked entity first
    triples: list[Triple]  # hop i joins nodes[i] and nodes[i + 1]
    drop: float  # probability drop of the predicted class when the path is removed

    def describe(self, resources: Resources) -> dict[str, Any]:
        kg = resources.graph
        parts = [kg.label(self.nodes[0])]
        for here, t in zip(self.nodes[1:], self.triples, strict=True):
            name = kg.relation_label(t.relation)
            parts.append(
                (f" --{name}--> " if t.object == here else f" <--{name}-- ") + kg.label(here)
            )
        return {
            "score": round(self.drop, 6),
            "text": "".join(parts),
            "hops": [kg.describe_triple(t) for t in self.triples],
        }


def _hop_graph(graph: LinkedSubgraph, num_relations: int) -> nx.Graph:
    """Undirected view of the subgraph's forward triples (local node ids) with their triples."""
    g = nx.Graph()
    ei, et = graph.edge_index.numpy(), graph.edge_type.numpy()
    nodes = graph.n_id.numpy()
    for (a, b), r in zip(ei.T.tolist(), et.tolist(), strict=True):
        if r >= num_relations or a == b:
            continue
        triple = Triple(int(nodes[a]), int(r), int(nodes[b]))
        if g.has_edge(a, b):
            g.edges[a, b]["triples"].append(triple)
        else:
            g.add_edge(a, b, triples=[triple])
    return g


def _without(graph: LinkedSubgraph, triples: list[Triple], num_relations: int) -> LinkedSubgraph:
    """A copy of ``graph`` without ``triples`` (their inverse edges removed too)."""
    pos = {int(e): i for i, e in enumerate(graph.n_id.tolist())}
    ei, et = graph.edge_index, graph.edge_type
    keep = torch.ones(et.shape[0], dtype=torch.bool)
    for t in triples:
        s, o = pos[t.subject], pos[t.object]
        keep &= ~((ei[0] == s) & (ei[1] == o) & (et == t.relation))
        keep &= ~((ei[0] == o) & (ei[1] == s) & (et == t.relation + num_relations))
    out = graph.clone()
    out.edge_index, out.edge_type = ei[:, keep], et[keep]
    return out


def _counts(
    model: FusionClassifier,
    resources: Resources,
    example: Prepared,
    removals: list[list[Triple]] | None = None,
) -> torch.Tensor | None:
    """The label counts the model reads [1 + len(removals), dims]: the example's own, then
    those counted on the KG without each list of triples; None when the model reads none."""
    if not model.config.reads_counts or example.counts is None:
        return None
    rows = [example.counts]
    if removals and resources.counter is not None:
        counter = resources.counter
        rows += [counter.without(triples).features(example.linked) for triples in removals]
    return torch.as_tensor(np.stack(rows))


@torch.no_grad()
def _probabilities(
    model: FusionClassifier,
    text: torch.Tensor,
    graphs: list[LinkedSubgraph],
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    batch = collate_graphs(graphs)
    n = len(graphs)
    logits = model.forward_parts(
        None,
        batch,
        text_vector=text.expand(n, -1),
        counts=None if counts is None else counts.expand(n, -1),
    )["logits"]
    return torch.softmax(logits, dim=-1)


def candidate_paths(
    resources: Resources, example: Prepared, target: int, max_hops: int
) -> list[tuple[list[int], list[Triple]]]:
    """Simple paths (node ids, triples) from the linked entities to the entity ``target``."""
    assert example.graph is not None
    g = _hop_graph(example.graph, resources.graph.num_relations)
    local = {int(e): i for i, e in enumerate(example.graph.n_id.tolist())}
    nodes = example.graph.n_id.tolist()
    found: list[tuple[list[int], list[Triple]]] = []
    if target not in local or local[target] not in g:
        return found
    for e in example.linked:
        if local.get(e) not in g or e == target:
            continue
        for path in nx.all_simple_paths(g, local[e], local[target], cutoff=max_hops):
            hops = [g.edges[a, b]["triples"][0] for a, b in itertools.pairwise(path)]
            found.append(([int(nodes[i]) for i in path], hops))
            if len(found) >= MAX_CANDIDATES:
                break
    found.sort(key=lambda p: len(p[1]))
    return found[:MAX_CANDIDATES]


def explain(
    model: FusionClassifier,
    resources: Resources,
    example: Prepared,
    text_vector: torch.Tensor,
    predicted: int,
    top_k: int = 3,
    max_hops: int = 3,
) -> list[ScoredPath]:
    """The ``top_k`` supporting paths of ``predicted`` for one prepared text (see module doc)."""
    if model.config.mode == "text" or example.graph is None or not example.linked:
        return []
    R = resources.graph.num_relations
    targets = (
        [resources.label_nodes[predicted]]
        if resources.label_nodes
        else _attended(model, resources, text_vector, example)
    )
    candidates = [c for t in targets for c in candidate_paths(resources, example, t, max_hops)]
    if not candidates:
        return []
    variants = [example.graph] + [_without(example.graph, hops, R) for _, hops in candidates]
    counts = _counts(model, resources, example, [hops for _, hops in candidates])
    probs = _probabilities(model, text_vector, variants, counts)[:, predicted]
    drops = (probs[0] - probs[1:]).tolist()
    scored = [
        ScoredPath(nodes, hops, d) for (nodes, hops), d in zip(candidates, drops, strict=True)
    ]
    scored.sort(key=lambda p: (-p.drop, len(p.triples)))
    return scored[:top_k]


def _attended(
    model: FusionClassifier,
    resources: Resources,
    text_vector: torch.Tensor,
    example: Prepared,
    n: int = 3,
) -> list[int]:
    """Without label nodes: the most attended non-linked nodes are the targets."""
    with torch.no_grad():
        parts = model.forward_parts(
            None,
            collate_graphs([example.graph]),  # type: ignore[list-item]
            text_vector=text_vector,
            counts=_counts(model, resources, example),
        )
    attention = parts["attention"].numpy()
    order = [int(i) for i in np.argsort(-attention) if not bool(example.graph.linked[i])]  # type: ignore[union-attr]
    return [int(example.graph.n_id[i]) for i in order[:n]]  # type: ignore[union-attr]


def random_path_drop(
    model: FusionClassifier,
    resources: Resources,
    example: Prepared,
    text_vector: torch.Tensor,
    predicted: int,
    hops: int,
    rng: random.Random,
) -> float | None:
    """Probability drop when a random walk of ``hops`` triples from a linked entity is removed."""
    assert example.graph is not None
    g = _hop_graph(example.graph, resources.graph.num_relations)
    local = {int(e): i for i, e in enumerate(example.graph.n_id.tolist())}
    starts = [local[e] for e in example.linked if local.get(e) in g]
    if not starts:
        return None
    here, seen, walk = rng.choice(starts), set(), []
    seen.add(here)
    for _ in range(hops):
        options = [b for b in g.neighbors(here) if b not in seen]
        if not options:
            break
        nxt = rng.choice(sorted(options))
        walk.append(rng.choice(g.edges[here, nxt]["triples"]))
        seen.add(nxt)
        here = nxt
    if not walk:
        return None
    probs = _probabilities(
        model,
        text_vector,
        [example.graph, _without(example.graph, walk, resources.graph.num_relations)],
        _counts(model, resources, example, [walk]),
    )
    return float(probs[0, predicted] - probs[1, predicted])


def fidelity(
    model: FusionClassifier,
    resources: Resources,
    examples: list[Prepared],
    limit: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Mean probability drop of the predicted class when the top path is removed, next to the
    same for a random walk of equal length from a linked entity, over texts that have a path."""
    rng = random.Random(seed)
    top: list[float] = []
    rand: list[float] = []
    for example in examples:
        if len(top) >= limit:
            break
        if not example.linked:
            continue
        tokens, graph, counts = resources.inputs(model, [example])
        with torch.no_grad():
            text = model.text_vector(tokens, 1)
            predicted = int(
                model.forward_parts(tokens, graph, text_vector=text, counts=counts)[
                    "logits"
                ].argmax()
            )
        paths = explain(model, resources, example, text, predicted, top_k=1)
        if not paths:
            continue
        baseline = random_path_drop(
            model, resources, example, text, predicted, len(paths[0].triples), rng
        )
        if baseline is None:
            continue
        top.append(paths[0].drop)
        rand.append(baseline)
    mean_top = float(np.mean(top)) if top else 0.0
    mean_random = float(np.mean(rand)) if rand else 0.0
    return {
        "texts": len(top),
        "top_path_drop": mean_top,
        "random_path_drop": mean_random,
        "ratio": mean_top / mean_random
        if mean_random > 0
        else float("inf")
        if mean_top > 0
        else 0.0,
    }
