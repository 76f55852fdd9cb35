"""The graph encoder: a relational GNN over linked subgraphs, with a context node per text.

Each text's subgraph gets one extra *context node* whose input is the projected text vector and
which is joined to the text's linked entities by two extra relations (context->entity and back),
the idea of QA-GNN: the text conditions the messages and the graph flows back into one vector.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import RGCNConv

from fusion.examples import MAX_DISTANCE


class GraphEncoder(nn.Module):
    """Stacked ``RGCNConv`` layers (basis decomposition) with residuals and layer norm.

    Args:
        feature_dim: size of the frozen node features (entity-text embeddings).
        text_dim: size of the text vector fed to the context nodes.
        hidden: node state size.
        num_relations: KG relations including inverses (``2 R``); two context relations are added.
        layers: message-passing rounds (at least 2, so information crosses two hops).
        num_bases: bases shared by the relation weight matrices.
        dropout: on messages.

    Shapes:
        x: [num_nodes, feature_dim]; text: [batch, text_dim]; edge_index: [2, num_edges];
        edge_type: [num_edges]; node_batch: [num_nodes] (graph of each node);
        linked: [num_nodes] bool (nodes the context node joins);
        distance: [num_nodes] hops to the nearest linked entity (capped, see fusion/examples.py).
        Returns (node states [num_nodes, hidden], context states [batch, hidden]).
    """

    def __init__(
        self,
        feature_dim: int,
        text_dim: int,
        hidden: int,
        num_relations: int,
        layers: int = 2,
        num_bases: int = 8,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.num_relations = num_relations
        self.node_in = nn.Linear(feature_dim, hidden)
        self.distance = nn.Embedding(MAX_DISTANCE + 2, hidden)  # hops to the nearest linked entity
        self.context_in = nn.Linear(text_dim, hidden)
        total = num_relations + 2
        bases = min(num_bases, total)
        self.convs = nn.ModuleList(
            RGCNConv(hidden, hidden, total, num_bases=bases) for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.hidden = hidden

    def forward(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
        node_batch: torch.Tensor,
        linked: torch.Tensor,
        distance: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, batch = x.shape[0], text.shape[0]
        nodes = self.node_in(x) + self.distance(distance)
        h = torch.cat([nodes, self.context_in(text)])  # context node b sits at n + b
        entities = linked.nonzero().flatten()
        context = n + node_batch[entities]
        to_entity = torch.stack([context, entities])
        edges = torch.cat([edge_index, to_entity, to_entity.flip(0)], dim=1)
        types = torch.cat([
            edge_type,
            torch.full_like(entities, self.num_relations),
            torch.full_like(entities, self.num_relations + 1),
        ])  # fmt: skip
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = norm(h + self.dropout(torch.relu(conv(h, edges, types))))
        return h[:n], h[n : n + batch]

    def __repr__(self) -> str:
        return f"GraphEncoder(hidden={self.hidden}, relations={self.num_relations}+2, layers={len(self.convs)})"
