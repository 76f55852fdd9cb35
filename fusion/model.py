"""The classifier: text encoder + graph encoder + fusion head, one code path for every mode.

    text    logits = text_head(t)
    graph   logits = graph_head(g, label nodes)              (the text vector is zeros)
    fused   logits = text_head(t) + gate * graph_head(...)   gate = sigmoid(w [t; g; c]) * has_entity
    counter logits = text_head([t; n])   n: parameter-free label counts (fusion/counter.py), the
                                         "GNN is a Counter?" baseline the GNN has to beat

With ``model.counts`` a fused model's text logits also read n: ``text_head([t; n])``
(``counts_head: concat``) or ``text_head(t) + PerLabelCounts(n)`` (``per_label``).

``t`` is the pooled text vector, ``c`` the context node's final state, ``g`` an attention
pooling of the node states queried by the text. With a label map, each class also scores its own
label node: ``s_k = <W_q [t; c], h(label node k)>``. ``has_entity`` is 0 for a text with no
linked entity, so such a text gets exactly the text-only logits.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.utils import softmax

from fusion.encoder import TextEncoder
from fusion.features import NodeFeatures
from fusion.graph_encoder import GraphEncoder
from fusion.path_encoder import PathEncoder
from fusion.settings import ModelConfig


class FusionClassifier(nn.Module):
    """Args:
    config: `ModelConfig`.
    text_encoder: the (adapted) text encoder; None only in "graph" mode.
    node_features: the frozen entity-text embeddings, made on first touch (fusion/features.py);
        `Resources.inputs` points the model at its graph's.
    num_relations: KG relations including inverses (2 R).
    num_labels: classes.
    uses_label_nodes: whether graphs carry one label node per class (a label map).
    path_rounds: the paths encoder's Bellman-Ford rounds (its walk length).
    """

    def __init__(
        self,
        config: ModelConfig,
        text_encoder: TextEncoder | None,
        node_features: NodeFeatures,
        num_relations: int,
        num_labels: int,
        text_dim: int,
        uses_label_nodes: bool,
        counter_dim: int = 0,
        path_rounds: int = 3,
    ):
        super().__init__()
        self.config = config
        self.text_encoder = text_encoder if config.mode != "graph" else None
        self.text_dim = text_dim
        self.num_labels = num_labels
        self.uses_label_nodes = uses_label_nodes
        self.node_features = node_features
        h = config.hidden
        # fused mode reads the counts only where there are some (a label map); counter mode
        # always does (build_model refuses it without one)
        self.reads_counts = config.reads_counts and (counter_dim > 0 or config.mode == "counter")
        self.counts_per_label = config.counts_per_label and self.reads_counts
        # the text head reads [t; n] (``counts_head: concat``); its probe fits on both
        self.counts_in_text_head = self.reads_counts and not self.counts_per_label
        head_in = text_dim + (counter_dim if self.counts_in_text_head else 0)
        self.text_head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(head_in, num_labels))
        if self.counts_per_label:
            self.counts_head = PerLabelCounts(
                counter_dim, num_labels, config.counts_hidden, config.dropout
            )
        if config.reads_walks:
            if not uses_label_nodes:
                raise ValueError("the paths encoder scores class nodes: it needs a label map")
            self.path_encoder = PathEncoder(text_dim, h, num_relations, path_rounds, config.dropout)
            self.gate = nn.Linear(text_dim + h, 1)
        elif config.reads_graph:
            self.graph_encoder = GraphEncoder(
                node_features.dim,
                text_dim,
                h,
                num_relations,
                config.gnn_layers,
                config.num_bases,
                config.dropout,
            )
            self.pool_query = nn.Linear(text_dim + h, h)
            self.graph_head = nn.Linear(2 * h, num_labels)
            self.label_query = nn.Linear(text_dim + h, h)
            self.gate = nn.Linear(text_dim + 2 * h, 1)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (the text head's, which every mode has)."""
        return next(self.text_head.parameters()).device

    def text_vector(self, tokens: dict[str, torch.Tensor] | None, batch_size: int) -> torch.Tensor:
        if self.text_encoder is None or tokens is None:  # graph mode reads no text
            return torch.zeros(batch_size, self.text_dim, device=self.device)
        return self.text_encoder(tokens["input_ids"], tokens["attention_mask"])

    def forward(
        self, tokens: dict[str, torch.Tensor] | None, graph: Batch | None = None
    ) -> torch.Tensor:
        """Logits [batch, num_labels]."""
        return self.forward_parts(tokens, graph)["logits"]

    def forward_parts(
        self,
        tokens: dict[str, torch.Tensor] | None,
        graph: Batch | None = None,
        text_vector: torch.Tensor | None = None,
        counts: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Logits plus the pieces explanations look at (gate, attention over nodes).

        ``text_vector`` [batch, text_dim] replaces the encoder's output when given (explanations
        score many variants of one graph against one text, encoded once). ``edge_weight``
        [edges] scales the paths encoder's messages (explanations take gradients through it)."""
        if text_vector is not None:
            t = text_vector
        else:
            if tokens is not None:
                size = tokens["input_ids"].shape[0]
            else:
                assert graph is not None, "give tokens, a graph batch, or both"
                size = int(graph.num_graphs)
            t = self.text_vector(tokens, size)
        batch_size = t.shape[0]
        branches: dict[str, torch.Tensor] = {}
        if self.reads_counts:
            assert counts is not None, "counter mode (and model.counts) needs the label counts"
            if self.counts_per_label:
                branches["counts_logits"] = self.counts_head(counts)
                text_logits = self.text_head(t) + branches["counts_logits"]
            else:
                text_logits = self.text_head(torch.cat([t, counts], dim=-1))
        else:
            text_logits = self.text_head(t)
        if not self.config.reads_graph:
            return {"logits": text_logits, "text_logits": text_logits, **branches}
        assert graph is not None, "graph and fused modes need the batch's subgraphs"
        if self.config.graph_encoder == "paths":
            return self._with_paths(t, text_logits, graph, branches, edge_weight)
        x = self.node_features.rows(graph.n_id)
        nodes, context = self.graph_encoder(
            x, t, graph.edge_index, graph.edge_type, graph.batch, graph.linked, graph.distance
        )
        # attention pooling over nodes, queried by the text and the context state
        query = self.pool_query(torch.cat([t, context], dim=-1))  # [B, H]
        scores = (nodes * query[graph.batch]).sum(-1) / nodes.shape[-1] ** 0.5
        attention = softmax(scores, graph.batch, num_nodes=nodes.shape[0])
        pooled = nodes.new_zeros(batch_size, nodes.shape[-1]).index_add_(
            0, graph.batch, attention.unsqueeze(-1) * nodes
        )
        graph_logits = self.graph_head(torch.cat([pooled, context], dim=-1))
        if self.uses_label_nodes:
            label_states = nodes[graph.label_pos]  # [B, C, H]
            label_query = self.label_query(torch.cat([t, context], dim=-1)).unsqueeze(1)
            graph_logits = (
                graph_logits + (label_states * label_query).sum(-1) / nodes.shape[-1] ** 0.5
            )
        if self.config.mode == "graph":
            return {"logits": graph_logits, "graph_logits": graph_logits, "attention": attention}
        gate = torch.sigmoid(self.gate(torch.cat([t, pooled, context], dim=-1)))
        gate = gate * _has_entity(graph, batch_size)
        logits = text_logits + gate * graph_logits
        return {
            "logits": logits,
            "text_logits": text_logits,
            "graph_logits": graph_logits,
            **branches,
            "gate": gate.squeeze(-1),
            "attention": attention,
        }

    def _with_paths(
        self,
        t: torch.Tensor,
        text_logits: torch.Tensor,
        graph: Batch,
        branches: dict[str, torch.Tensor],
        edge_weight: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """graph mode: the path scores; fused: text logits + gate * path scores, the gate read
        from the text and the mean class-node state, 0 for a text with no linked entity."""
        scores, states = self.path_encoder(
            t,
            graph.edge_index,
            graph.edge_type,
            graph.batch,
            graph.linked,
            graph.label_pos,
            edge_weight,
        )
        if self.config.mode == "graph":
            return {"logits": scores, "graph_logits": scores}
        gate = torch.sigmoid(self.gate(torch.cat([t, states.mean(1)], dim=-1)))
        gate = gate * _has_entity(graph, t.shape[0])
        return {
            "logits": text_logits + gate * scores,
            "text_logits": text_logits,
            "graph_logits": scores,
            **branches,
            "gate": gate.squeeze(-1),
        }


def _has_entity(graph: Batch, batch_size: int) -> torch.Tensor:
    """[batch, 1]: 1.0 for a text with a linked entity, 0.0 for one without (its gate is shut)."""
    linked = graph.linked.float()
    linked_count = linked.new_zeros(batch_size).index_add_(0, graph.batch, linked)
    return (linked_count > 0).float().unsqueeze(-1)


class PerLabelCounts(nn.Module):
    """Logits from the counter's features (fusion/counter.py: ``log1p`` counts, ``blocks``
    blocks of ``num_labels`` columns, column ``b * C + j`` belonging to class j).

    Each class j is scored from its own columns ``[x_bj]_b`` and its share of each block,
    ``expm1(x_bj) / sum_k expm1(x_bk)``, by one MLP shared across classes; a linear map of the
    layer-normed features adds what one class's counts say about another.

    Args:
        counter_dim: feature columns (a multiple of ``num_labels``).
        num_labels: classes C.
        hidden: the shared MLP's hidden size.
        dropout: on the cross-class linear map's input.
    """

    def __init__(self, counter_dim: int, num_labels: int, hidden: int, dropout: float):
        super().__init__()
        if counter_dim % num_labels:
            raise ValueError(f"{counter_dim} count columns are not blocks of {num_labels} classes")
        self.num_labels = num_labels
        blocks = counter_dim // num_labels
        self.shared = nn.Sequential(nn.Linear(2 * blocks, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.cross = nn.Sequential(
            nn.LayerNorm(counter_dim), nn.Dropout(dropout), nn.Linear(counter_dim, num_labels)
        )

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        """counts [B, blocks * C] -> logits [B, C]."""
        per = counts.view(counts.shape[0], -1, self.num_labels)  # [B, blocks, C]
        raw = torch.expm1(per)
        share = raw / raw.sum(-1, keepdim=True).clamp(min=1.0)
        own = torch.cat([per, share], dim=1).transpose(1, 2)  # [B, C, 2 * blocks]
        return self.shared(own).squeeze(-1) + self.cross(counts)
