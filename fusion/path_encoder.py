"""The paths encoder: label-conditioned path reasoning in the line of NBFNet (Zhu et al., 2021).

Classification is read as scoring the link text -> class node. The boundary condition puts the
query (a learned vector plus a projection of the text vector) on the text's linked entities and
zeros elsewhere; ``layers`` rounds of a generalized Bellman-Ford then run over the text's walk
subgraph (fusion/path_graph.py), each step's message being the state of the node it leaves
times the query-conditioned embedding of its relation (DistMult):

    h0_v   = q  if v is a linked entity, else 0
    m_e    = h_u * w_l(q)[r]                       for each step e = (u -r-> v)
    h_l,v  = h_{l-1},v + ReLU(LN(W_l [h_{l-1},v ; mean_e m_e ; max_e m_e ; log(1 + deg_v) mean_e m_e])) + h0_v

and class k scores ``MLP([h_L(label node k) ; q])``. A message depends on relation embeddings,
the query and the round (the distance walked), never on an entity's identity, so two entities
with the same relational paths get the same scores, whether or not training saw them.

Plain sparse torch (``index_add_`` and ``scatter_reduce``) rather than a torch-geometric
``MessagePassing`` layer: the message needs the query of each step's text, which is one gather,
and it keeps explanations' per-step weights explicit. It needs neither pyg-lib nor
torch-scatter.

``edge_weight`` [steps] scales every message of a step (all ones by default): explanations take
the class score's gradient with respect to it (fusion/explain.py).

Shapes:
    text [B, text_dim]; edge_index [2, E] (from, to); edge_type [E] in 0..num_relations-1;
    node_batch [N]; linked [N] bool; label_pos [B, C] -> scores [B, C], label states [B, C, H].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PathLayer(nn.Module):
    """One Bellman-Ford round: query-conditioned DistMult messages, mean/max/degree-scaled
    aggregation, a linear update with layer norm and a residual."""

    def __init__(self, hidden: int, num_relations: int, dropout: float):
        super().__init__()
        self.num_relations = num_relations
        self.hidden = hidden
        self.relation = nn.Linear(hidden, num_relations * hidden)
        self.update = nn.Linear(4 * hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        h: Tensor,
        query: Tensor,
        boundary: Tensor,
        edge_index: Tensor,
        edge_type: Tensor,
        edge_batch: Tensor,
        edge_weight: Tensor | None,
    ) -> Tensor:
        n, hidden = h.shape
        source, target = edge_index
        relations = self.relation(query).view(-1, self.num_relations, hidden)  # [B, 2R, H]
        messages = h[source] * relations[edge_batch, edge_type]
        if edge_weight is not None:
            messages = messages * edge_weight.unsqueeze(-1)
        degree = h.new_zeros(n).index_add_(0, target, torch.ones_like(target, dtype=h.dtype))
        total = torch.zeros_like(h).index_add_(0, target, messages)
        mean = total / degree.clamp(min=1).unsqueeze(-1)
        most = torch.zeros_like(h).scatter_reduce(
            0, target.unsqueeze(-1).expand_as(messages), messages, "amax", include_self=False
        )
        scaled = mean * torch.log1p(degree).unsqueeze(-1)
        out = self.update(torch.cat([h, mean, most, scaled], dim=-1))
        return h + self.dropout(torch.relu(self.norm(out))) + boundary

    def __repr__(self) -> str:
        return f"PathLayer({self.hidden}, relations={self.num_relations})"


class PathEncoder(nn.Module):
    """Scores each class from the walks that lead from the text's linked entities to its node.

    Args:
        text_dim: size of the text vector (the query's input; zeros in graph mode).
        hidden: state size.
        num_relations: directed relations (``2 R``: each KG relation and its inverse).
        layers: Bellman-Ford rounds, the longest walk that reaches a class node.
        dropout: on each round's update.
    """

    def __init__(
        self, text_dim: int, hidden: int, num_relations: int, layers: int, dropout: float = 0.1
    ):
        super().__init__()
        self.hidden = hidden
        self.query_base = nn.Parameter(torch.randn(hidden) / hidden**0.5)
        self.query_text = nn.Linear(text_dim, hidden)
        self.layers = nn.ModuleList(
            PathLayer(hidden, num_relations, dropout) for _ in range(layers)
        )
        self.score = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def query(self, text: Tensor) -> Tensor:
        return self.query_base + self.query_text(text)

    def forward(
        self,
        text: Tensor,
        edge_index: Tensor,
        edge_type: Tensor,
        node_batch: Tensor,
        linked: Tensor,
        label_pos: Tensor,
        edge_weight: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(class scores [B, C], label-node states [B, C, H])."""
        query = self.query(text)  # [B, H]
        boundary = torch.where(linked.unsqueeze(-1), query[node_batch], 0.0)
        edge_batch = node_batch[edge_index[0]]
        h = boundary
        for layer in self.layers:
            h = layer(h, query, boundary, edge_index, edge_type, edge_batch, edge_weight)
        states = h[label_pos]  # [B, C, H]
        paired = torch.cat([states, query.unsqueeze(1).expand_as(states)], dim=-1)
        return self.score(paired).squeeze(-1), states

    def __repr__(self) -> str:
        return f"PathEncoder(hidden={self.hidden}, rounds={len(self.layers)})"
