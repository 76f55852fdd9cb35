"""Explanations: the graph paths that support a prediction, ranked by how much they matter.

Candidates are the simple paths (at most ``max_hops`` hops) inside the subgraph the model saw,
from a linked entity to the predicted class's label node (without a label map: to the nodes the
model attended to most). Each hop is a triple of the KG.

A path's score is its *occlusion attribution in log-odds*: how much the predicted class's
log-odds, ``z_pred - logsumexp(z_other)`` of the calibrated logits, drop when the path's triples
are removed from the KG. Log-odds keep the ranking where users look: a prediction at 99.99%
moves its probability by 1e-5 when a path goes, but its log-odds by as much as anywhere else.
All candidates are scored in one batched forward pass, with the text encoded once. Removing a
path's triples takes them out of the subgraph the GNN reads and, when the model reads label
counts (``model.counts``), out of the KG those are counted on (`without`); keeping only some
paths (`only`) keeps those triples alone in both.

With the paths encoder (``model.graph_encoder: paths``) the candidates come from the model
itself, as in NBFNet: the predicted class's log-odds are differentiated with respect to a
weight on every step of the walk subgraph, and a beam search keeps, per node and walk length,
the walks from a linked entity with the largest summed step gradients (`gradient_paths`).
Each is then checked by removal, as above, and ``attribution`` reports its gradient sum.

The top-k are chosen as a set (`_best_set`): the best path alone first, then the others that,
removed together with it, drop the log-odds most. Ranking paths one by one would show three
walks through the same decisive edge, or one linked entity's paths while another entity's edge
to the class still carries the prediction; the set covers the evidence the model reads. Paths
with the same triples are candidates once (`_distinct`).

Faithfulness (`faithfulness`, ERASER-style, DeYoung et al. 2020): *comprehensiveness* is the
log-odds drop when the top-k paths are removed (higher: the model needed them), *sufficiency*
the drop when only they are kept (lower: they are enough). Each is set against k random walks
of the same lengths from the linked entities, removed or kept the same way.
"""

from __future__ import annotations

import copy
import itertools
import random

import networkx as nx
import numpy as np
import torch

from fusion.examples import LinkedSubgraph, collate_graphs
from fusion.model import FusionClassifier
from fusion.path_graph import walk_length
from fusion.resources import Prepared, Resources
from kg.graph import Triple
from kg.graph_path import GraphPath

MAX_CANDIDATES = 48
BEAM_WIDTH = 8  # walks kept per node and length by the gradient beam search
SET_POOL = 5  # the paths best alone among which `_best_set` chooses the top-k set


def step_triple(u: int, r: int, v: int, num_relations: int) -> Triple:
    """The KG triple of the step ``u -r-> v``: ``r`` follows a triple, ``r + R`` walks it back."""
    if r < num_relations:
        return Triple(u, r, v)
    return Triple(v, r - num_relations, u)


def _hop_graph(graph: LinkedSubgraph, num_relations: int) -> nx.Graph:
    """Undirected view of the subgraph's triples (local node ids) with their triples. An edge
    of type ``r + R`` walks triple ``r`` backwards (walk subgraphs hold one direction only)."""
    g = nx.Graph()
    ei, et = graph.edge_index.numpy(), graph.edge_type.numpy()
    nodes = graph.n_id.numpy()
    for (a, b), r in zip(ei.T.tolist(), et.tolist(), strict=True):
        if a == b:
            continue
        triple = step_triple(int(nodes[a]), int(r), int(nodes[b]), num_relations)
        if not g.has_edge(a, b):
            g.add_edge(a, b, triples=[triple])
        elif triple not in g.edges[a, b]["triples"]:
            g.edges[a, b]["triples"].append(triple)
    return g


def _edges_of(graph: LinkedSubgraph, triples: list[Triple], num_relations: int) -> torch.Tensor:
    """bool [edges]: which of ``graph``'s edges are ``triples`` or their inverses."""
    ei, et = graph.edge_index, graph.edge_type
    if not triples or not et.numel():
        return torch.zeros(et.shape[0], dtype=torch.bool)
    pos = {int(e): i for i, e in enumerate(graph.n_id.tolist())}
    n, types = len(pos), max(2 * num_relations, int(et.max()) + 1)
    # one key per (source, target, type): a triple's edge, or its inverse walked back
    keys = (ei[0] * n + ei[1]) * types + et
    wanted = []
    for t in triples:
        s, o = pos[t.subject], pos[t.object]
        wanted += [
            (s * n + o) * types + t.relation,
            (o * n + s) * types + t.relation + num_relations,
        ]
    return torch.isin(keys, torch.tensor(wanted, dtype=keys.dtype))


def _keep_edges(graph: LinkedSubgraph, keep: torch.Tensor) -> LinkedSubgraph:
    out = copy.copy(graph)  # shares the node tensors, which no variant changes
    out.edge_index, out.edge_type = graph.edge_index[:, keep], graph.edge_type[keep]
    return out


def _without(graph: LinkedSubgraph, triples: list[Triple], num_relations: int) -> LinkedSubgraph:
    """A copy of ``graph`` without ``triples`` (their inverse edges removed too)."""
    return _keep_edges(graph, ~_edges_of(graph, triples, num_relations))


def _only(graph: LinkedSubgraph, triples: list[Triple], num_relations: int) -> LinkedSubgraph:
    """A copy of ``graph`` whose only edges are ``triples`` (and their inverses)."""
    return _keep_edges(graph, _edges_of(graph, triples, num_relations))


def _counts(
    model: FusionClassifier,
    resources: Resources,
    example: Prepared,
    removals: list[list[Triple]] | None = None,
    keep_only: bool = False,
) -> torch.Tensor | None:
    """The label counts the model reads [1 + len(removals), dims]: the example's own, then
    those counted on the KG without each list of triples (``keep_only``: with only them);
    None when the model reads none."""
    if not model.reads_counts or example.counts is None:
        return None
    rows = [example.counts]
    if removals and resources.counter is not None:
        counter = resources.counter
        for triples in removals:
            changed = counter.only(triples) if keep_only else counter.without(triples)
            rows.append(changed.features(example.linked))
    return torch.as_tensor(np.stack(rows))


def log_odds(logits: torch.Tensor, target: int) -> torch.Tensor:
    """``z_target - logsumexp(z_other)`` per row: the log-odds of ``target``'s probability."""
    others = torch.cat([logits[:, :target], logits[:, target + 1 :]], dim=1)
    return logits[:, target] - torch.logsumexp(others, dim=1)


@torch.no_grad()
def _log_odds(
    model: FusionClassifier,
    text: torch.Tensor,
    graphs: list[LinkedSubgraph],
    target: int,
    counts: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-odds of ``target`` for each graph variant [len(graphs)], text encoded once."""
    batch = collate_graphs(graphs)
    n = len(graphs)
    logits = model.forward_parts(
        None,
        batch,
        text_vector=text.expand(n, -1),
        counts=None if counts is None else counts,
    )["logits"]
    return log_odds(logits / temperature, target)


def candidate_paths(
    resources: Resources, example: Prepared, target: int, max_hops: int
) -> list[tuple[list[int], list[Triple]]]:
    """Simple paths (node ids, triples) from the linked entities to the entity ``target``,
    shortest first, taken from each linked entity in turn (so that one entity with many paths
    leaves room for the others'), at most ``MAX_CANDIDATES``."""
    assert example.graph is not None
    g = _hop_graph(example.graph, resources.graph.num_relations)
    local = {int(e): i for i, e in enumerate(example.graph.n_id.tolist())}
    nodes = example.graph.n_id.tolist()
    if target not in local or local[target] not in g:
        return []
    per_entity: list[list[tuple[list[int], list[Triple]]]] = []
    for e in dict.fromkeys(example.linked):
        if local.get(e) not in g or e == target:
            continue
        paths = []
        for path in nx.all_simple_paths(g, local[e], local[target], cutoff=max_hops):
            hops = [g.edges[a, b]["triples"][0] for a, b in itertools.pairwise(path)]
            paths.append(([int(nodes[i]) for i in path], hops))
            if len(paths) >= MAX_CANDIDATES:
                break
        paths.sort(key=lambda p: len(p[1]))
        per_entity.append(paths)
    found = [p for turn in itertools.zip_longest(*per_entity) for p in turn if p is not None]
    found.sort(key=lambda p: len(p[1]))  # stable: within a length, entities take turns
    return found[:MAX_CANDIDATES]


def gradient_paths(
    model: FusionClassifier,
    resources: Resources,
    example: Prepared,
    text_vector: torch.Tensor,
    predicted: int,
    temperature: float = 1.0,
    limit: int = MAX_CANDIDATES,
) -> list[tuple[list[int], list[Triple], float]] | None:
    """The walks of the example's walk subgraph from a linked entity to the predicted class's
    node with the largest summed gradients of that class's log-odds with respect to their
    steps (module doc): (entity ids, triples, gradient sum), best first, at most ``limit``.
    None when the model passes no gradient (int8 layers)."""
    graph = example.graph
    assert graph is not None
    batch = collate_graphs([graph])
    weight = torch.ones(graph.edge_index.shape[1], requires_grad=True)
    with torch.enable_grad():
        logits = model.forward_parts(
            None,
            batch,
            text_vector=text_vector,
            counts=_counts(model, resources, example),
            edge_weight=weight,
        )["logits"]
        odds = log_odds(logits / temperature, predicted).sum()
        if odds.requires_grad:
            odds.backward()
    if weight.grad is None:  # int8 layers (`kgfuse export --int8`) pass no gradient
        return None
    importance = weight.grad.tolist()
    target = int(graph.label_pos[predicted])
    R = resources.graph.num_relations
    nodes = graph.n_id.tolist()
    source, dest = graph.edge_index.tolist()
    relation = graph.edge_type.tolist()
    out_steps: dict[int, list[int]] = {}
    for e, u in enumerate(source):
        out_steps.setdefault(u, []).append(e)
    # beam[node]: (score, local nodes walked, steps) of the best walks ending there
    Walk = tuple[float, list[int], list[int]]
    beam: dict[int, list[Walk]] = {
        int(i): [(0.0, [int(i)], [])] for i in graph.linked.nonzero().flatten().tolist()
    }
    found: list[Walk] = []
    for _ in range(walk_length(resources.subgraph.hops or 1)):
        grown: dict[int, list[Walk]] = {}
        for u, walks in beam.items():
            for e in out_steps.get(u, []):
                v = dest[e]
                for score, walked, steps in walks:
                    if v not in walked:
                        walk = (score + importance[e], [*walked, v], [*steps, e])
                        grown.setdefault(v, []).append(walk)
        beam = {v: sorted(w, key=lambda x: -x[0])[:BEAM_WIDTH] for v, w in grown.items()}
        found.extend(beam.get(target, []))
        beam.pop(target, None)  # a walk ends at the class node
    found.sort(key=lambda x: -x[0])
    paths = []
    for score, walked, steps in found[:limit]:
        triples = [step_triple(nodes[source[e]], relation[e], nodes[dest[e]], R) for e in steps]
        paths.append(([nodes[i] for i in walked], triples, score))
    return paths


def explain(
    model: FusionClassifier,
    resources: Resources,
    example: Prepared,
    text_vector: torch.Tensor,
    predicted: int,
    top_k: int = 3,
    max_hops: int = 3,
    temperature: float = 1.0,
) -> list[GraphPath]:
    """The ``top_k`` supporting paths of ``predicted`` for one prepared text (see module doc);
    ``temperature`` is the bundle's (log-odds of the calibrated probabilities)."""
    if model.config.mode == "text" or example.graph is None or not example.linked:
        return []
    R = resources.graph.num_relations
    attributions: list[float | None]
    found = None
    if model.config.reads_walks:
        found = gradient_paths(model, resources, example, text_vector, predicted, temperature)
    if found is not None:
        candidates = [(nodes, hops) for nodes, hops, _ in found]
        attributions = [a for _, _, a in found]
    else:
        targets = (
            [resources.label_nodes[predicted]]
            if resources.label_nodes
            else _attended(model, resources, text_vector, example)
        )
        candidates = [c for t in targets for c in candidate_paths(resources, example, t, max_hops)]
        attributions = [None] * len(candidates)
    candidates, attributions = _distinct(candidates, attributions)
    if not candidates:
        return []
    variants = [example.graph] + [_without(example.graph, hops, R) for _, hops in candidates]
    counts = _counts(model, resources, example, [hops for _, hops in candidates])
    odds = _log_odds(model, text_vector, variants, predicted, counts, temperature)
    drops = (odds[0] - odds[1:]).tolist()
    scored = [
        GraphPath(tuple(nodes), tuple(hops), d, a)
        for (nodes, hops), d, a in zip(candidates, drops, attributions, strict=True)
    ]
    scored.sort(key=lambda p: (-p.score, p.hops))
    return _best_set(model, resources, example, text_vector, predicted, scored, top_k, temperature)


def _distinct(
    candidates: list[tuple[list[int], list[Triple]]], attributions: list[float | None]
) -> tuple[list[tuple[list[int], list[Triple]]], list[float | None]]:
    """The candidates without repeats: a path whose triples are those of an earlier one
    (the same facts walked through other entities, or in another order) is dropped."""
    seen: set[frozenset[Triple]] = set()
    kept, kept_attributions = [], []
    for candidate, attribution in zip(candidates, attributions, strict=True):
        key = frozenset(candidate[1])
        if key not in seen:
            seen.add(key)
            kept.append(candidate)
            kept_attributions.append(attribution)
    return kept, kept_attributions


def _best_set(
    model: FusionClassifier,
    resources: Resources,
    example: Prepared,
    text_vector: torch.Tensor,
    predicted: int,
    ranked: list[GraphPath],
    top_k: int,
    temperature: float,
) -> list[GraphPath]:
    """The ``top_k`` paths chosen as a set: the path whose removal alone drops the log-odds
    most, then the ``top_k - 1`` others, of the next ``SET_POOL - 1`` best alone, whose triples
    removed together with its own drop the log-odds most (every such set is tried, in one
    batched forward pass). Paths that share their triples, or stand for the same evidence
    (two entities with an edge each to the class), add little to that joint drop, so a set
    that covers other evidence wins; the individually best ``top_k`` are one of the sets tried,
    so the chosen set's joint drop is never smaller. Ties go to the set with fewer triples,
    then to the better paths alone. Each path keeps its own drop as ``score``; the first is the
    best alone, the others follow in their order alone."""
    if len(ranked) <= top_k or top_k <= 1:
        return ranked[:top_k]
    assert example.graph is not None
    R = resources.graph.num_relations
    first, others = ranked[0], ranked[1 : max(SET_POOL, top_k)]
    sets = list(itertools.combinations(range(len(others)), top_k - 1))
    unions = [
        list(dict.fromkeys(t for p in [first, *(others[i] for i in c)] for t in p.triples))
        for c in sets
    ]
    # the largest joint drop is the lowest log-odds left: the full graph's need not be scored
    variants = [_without(example.graph, u, R) for u in unions]
    counts = _counts(model, resources, example, unions)
    left = _log_odds(
        model, text_vector, variants, predicted, None if counts is None else counts[1:], temperature
    ).tolist()
    best = min(range(len(sets)), key=lambda i: (left[i], len(unions[i]), i))
    return [first, *(others[i] for i in sets[best])]


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


def random_walks(
    resources: Resources, example: Prepared, lengths: list[int], rng: random.Random
) -> list[list[Triple]]:
    """One random walk per length (as many triples, or fewer where the walk is stuck) from a
    random linked entity inside the example's subgraph; [] when no linked entity has an edge."""
    assert example.graph is not None
    g = _hop_graph(example.graph, resources.graph.num_relations)
    local = {int(e): i for i, e in enumerate(example.graph.n_id.tolist())}
    starts = [local[e] for e in example.linked if local.get(e) in g]
    if not starts:
        return []
    walks = []
    for hops in lengths:
        here = rng.choice(starts)
        seen, walk = {here}, []
        for _ in range(hops):
            options = [b for b in g.neighbors(here) if b not in seen]
            if not options:
                break
            nxt = rng.choice(sorted(options))
            walk.append(rng.choice(g.edges[here, nxt]["triples"]))
            seen.add(nxt)
            here = nxt
        if walk:
            walks.append(walk)
    return walks


def _drop(
    model: FusionClassifier,
    resources: Resources,
    example: Prepared,
    text: torch.Tensor,
    predicted: int,
    triples: list[Triple],
    keep_only: bool,
    temperature: float,
) -> float:
    """Log-odds drop of ``predicted`` when ``triples`` are removed (or kept alone)."""
    assert example.graph is not None
    R = resources.graph.num_relations
    changed = (_only if keep_only else _without)(example.graph, triples, R)
    counts = _counts(model, resources, example, [triples], keep_only)
    odds = _log_odds(model, text, [example.graph, changed], predicted, counts, temperature)
    return float(odds[0] - odds[1])


def faithfulness(
    model: FusionClassifier,
    resources: Resources,
    examples: list[Prepared],
    top_k: int = 3,
    limit: int = 200,
    seed: int = 0,
    temperature: float = 1.0,
) -> dict[str, float]:
    """Comprehensiveness and sufficiency of the top-``top_k`` paths, each next to the same for
    random walks of the same lengths (module doc), averaged over the first ``limit`` texts
    that have a supporting path. ``ratio`` is comprehensiveness over its random baseline;
    ``comp_top1`` and ``ratio_top1`` are the same for the top path alone (against the first
    random walk, of its length)."""
    rng = random.Random(seed)
    keys = ("comp", "comp_random", "suff", "suff_random", "comp_top1", "comp_top1_random")
    rows: dict[str, list[float]] = {k: [] for k in keys}
    keeps = hasattr(resources.counter, "only") or not model.reads_counts
    for example in examples:
        if len(rows["comp"]) >= limit:
            break
        if not example.linked:
            continue
        tokens, graph, counts = resources.inputs(model, [example])
        with torch.no_grad():
            text = model.text_vector(tokens, 1)
            logits = model.forward_parts(tokens, graph, text_vector=text, counts=counts)["logits"]
        predicted = int(logits.argmax())
        paths = explain(model, resources, example, text, predicted, top_k, temperature=temperature)
        if not paths:
            continue
        walks = random_walks(resources, example, [p.hops for p in paths], rng)
        if not walks:
            continue
        top = [t for p in paths for t in p.triples]
        rand = [t for w in walks for t in w]
        args = (model, resources, example, text, predicted)
        rows["comp"].append(_drop(*args, top, False, temperature))
        rows["comp_random"].append(_drop(*args, rand, False, temperature))
        rows["comp_top1"].append(_drop(*args, list(paths[0].triples), False, temperature))
        rows["comp_top1_random"].append(_drop(*args, walks[0], False, temperature))
        if keeps:
            rows["suff"].append(_drop(*args, top, True, temperature))
            rows["suff_random"].append(_drop(*args, rand, True, temperature))
    out: dict[str, float] = {"texts": len(rows["comp"]), "top_k": top_k}
    for key, values in rows.items():
        out[key] = float(np.mean(values)) if values else float("nan")
    out["ratio"] = _ratio(out["comp"], out["comp_random"])
    out["ratio_top1"] = _ratio(out["comp_top1"], out["comp_top1_random"])
    return out


def _ratio(score: float, baseline: float) -> float:
    if baseline > 0:
        return score / baseline
    return float("inf") if score > 0 else 0.0
