"""Turn texts into model inputs: link once, extract the subgraph once, batch with PyG.

A `LinkedSubgraph` holds one text's subgraph: its linked entities and the label nodes are the
seeds; the KG's triples among the kept nodes, with inverse edges, are its edges. Training
examples can have their *label facts* masked (every triple between a linked entity and a label
node is dropped), as link-prediction training does: otherwise the model learns to read
"X has_type water" off the graph, a lookup that entities unseen in training cannot offer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from fusion.settings import SubgraphSettings
from kg.protocol import Graph


class LinkedSubgraph(Data):
    """PyG Data whose ``label_pos`` (positions of the label nodes) shifts like node indices."""

    def __inc__(self, key: str, value: object, *args: object, **kwargs: object) -> object:
        if key == "label_pos":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value: object, *args: object, **kwargs: object) -> object:
        if key == "label_pos":
            return None  # stack: [batch, num_labels]
        return super().__cat_dim__(key, value, *args, **kwargs)


def hidden_facts(
    linked: Iterable[int], own: bool, hidden: AbstractSet[int] = frozenset()
) -> set[int]:
    """The entities whose label facts a text does not see: its own linked ones when ``own``
    (label-fact masking), and every ``hidden`` one (validation's held-out entities while a model
    trains, fusion/setup.py)."""
    return (set(linked) if own else set()) | hidden


def build_subgraph(
    kg: Graph,
    linked: Sequence[int],
    label_nodes: Sequence[int],
    settings: SubgraphSettings,
    masked: AbstractSet[int] = frozenset(),
    use_kg: bool = True,
) -> LinkedSubgraph:
    """The subgraph of one text (see the module docstring); ``use_kg=False`` keeps the seeds
    and no edge (the no-KG control). The label facts of the ``masked`` entities are dropped,
    wherever they sit (`hidden_facts`: the text's own when masked, and validation's held-out
    entities while a model trains)."""
    linked = list(dict.fromkeys(int(e) for e in linked))
    seeds = linked + [e for e in label_nodes if e not in linked]
    assert settings.hops is not None, "hops are resolved before subgraphs are built"
    sub = kg.subgraph(
        seeds, hops=settings.hops if use_kg else 0, max_nodes=settings.max_nodes + len(seeds)
    )
    if not use_kg:
        sub.edge_index, sub.edge_type = sub.edge_index[:, :0], sub.edge_type[:0]
    src, dst, rel = sub.edge_index[0], sub.edge_index[1], sub.edge_type
    if masked and label_nodes:
        pos = {e: i for i, e in enumerate(sub.nodes.tolist())}
        is_masked = np.zeros(sub.num_nodes, dtype=bool)
        is_masked[[pos[e] for e in masked if e in pos]] = True
        is_label = np.zeros(sub.num_nodes, dtype=bool)
        is_label[[pos[e] for e in label_nodes]] = True
        fact = (is_masked[src] & is_label[dst]) | (is_label[src] & is_masked[dst])
        src, dst, rel = src[~fact], dst[~fact], rel[~fact]
    R = kg.num_relations
    edge_index = torch.as_tensor(
        np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]), dtype=torch.long
    )
    edge_type = torch.as_tensor(np.concatenate([rel, rel + R]), dtype=torch.long)
    nodes = torch.as_tensor(sub.nodes, dtype=torch.long)
    linked_mask = torch.zeros(sub.num_nodes, dtype=torch.bool)
    linked_mask[: len(linked)] = True  # seeds come first, in the order given
    label_pos = torch.arange(len(linked), len(linked) + len(label_nodes), dtype=torch.long)
    distance = torch.as_tensor(_distance_to_linked(edge_index.numpy(), sub.num_nodes, len(linked)))
    return LinkedSubgraph(
        n_id=nodes,
        edge_index=edge_index,
        edge_type=edge_type,
        linked=linked_mask,
        label_pos=label_pos,
        distance=distance,
        num_nodes=sub.num_nodes,
    )


MAX_DISTANCE = 3  # distances are capped; MAX_DISTANCE + 1 marks "not reachable"


def _distance_to_linked(edge_index: np.ndarray, num_nodes: int, num_linked: int) -> np.ndarray:
    """Hops from each node to the nearest linked entity (the first ``num_linked`` nodes),
    capped: the "labeling trick" of inductive relational models (GraIL, SEAL), which tells the
    graph encoder where the text's entities sit."""
    distance = np.full(num_nodes, MAX_DISTANCE + 1, dtype=np.int64)
    frontier = np.arange(num_linked)
    distance[frontier] = 0
    src, dst = edge_index
    for hop in range(1, MAX_DISTANCE + 1):
        if len(frontier) == 0:
            break
        reached = np.unique(dst[np.isin(src, frontier)])
        frontier = reached[distance[reached] > hop]
        distance[frontier] = hop
    return distance


def collate_graphs(graphs: Sequence[LinkedSubgraph]) -> Batch:
    return Batch.from_data_list(list(graphs))
