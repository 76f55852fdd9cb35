"""Everything a model needs besides its weights: the KG, the linker, the label nodes, the
text encoder and the frozen node features; and the per-text preparation (link once,
extract the subgraph once) that training, evaluation and serving share."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from spacy.language import Language
from torch_geometric.data import Batch

from fusion.counter import LabelCounter
from fusion.encoder import EncoderConfig, TextEncoder
from fusion.examples import (
    LinkedSubgraph,
    SubgraphSettings,
    build_subgraph,
    collate_graphs,
    hidden_facts,
)
from fusion.features import FeatureTable, NodeFeatures, VectorCache
from fusion.path_counts import PathCounter, RelationSequence, fit_sequences
from fusion.path_graph import build_path_subgraph, walk_length
from kg.errors import KGFuseError, KGReadOnlyError
from kg.extend import check_graph, id_map
from kg.graph import KnowledgeGraph
from kg.protocol import Graph
from nlp.alias_table import AliasTable
from nlp.linker import KGLinker, from_kg, linked_entities
from nlp.texts import check_text_list

if TYPE_CHECKING:
    from fusion.model import FusionClassifier

COUNTER_MAX_DEGREE = 100  # hubs (colours, generations) would swamp the counts


@dataclass
class Prepared:
    """One text, linked and with its subgraph built: computed once, reused every epoch."""

    text: str
    label: int  # index into the label list; -1 when unknown
    linked: list[int]  # entity ids
    spans: list[dict[str, Any]] = field(
        default_factory=list
    )  # linked spans (text, offsets, IRI, score)
    graph: LinkedSubgraph | None = None
    counts: np.ndarray | None = None  # counter-baseline features, when there are label nodes


def make_counter(
    graph: Graph,
    label_nodes: list[int],
    subgraph: SubgraphSettings,
    path_sequences: Sequence[RelationSequence] = (),
) -> PathCounter | LabelCounter | None:
    """The label counter ``subgraph.counts`` names; None without label nodes. A triple store
    counts "relations" where "sequences" are asked for (walks by sequence need the whole CSR)."""
    if not label_nodes:
        return None
    compiled = graph.compiled
    if subgraph.counts == "sequences" and compiled is not None:
        assert subgraph.hops is not None, "hops are resolved before the counter is built"
        return PathCounter(compiled, label_nodes, hops=subgraph.hops, sequences=path_sequences)
    return LabelCounter(
        graph,
        label_nodes,
        max_degree=COUNTER_MAX_DEGREE,
        by_relation=subgraph.counts != "entities",
    )


class Resources:
    """The KG-side context of a model. Built from settings, or restored from a bundle.

    ``nlp`` and ``text_encoder`` may be passed in when already built (training links the texts
    before it has chosen every setting); ``path_sequences`` is the vocabulary of the
    "sequences" counts, fitted on the training texts (`fit_sequences`) or read from a bundle.
    ``walks``: texts get walk subgraphs (fusion/path_graph.py, for the paths encoder) instead
    of capped neighbourhoods (for the RGCN).
    """

    def __init__(
        self,
        graph: Graph,
        labels: list[str],
        label_nodes: list[int],
        encoder_config: EncoderConfig,
        subgraph: SubgraphSettings,
        linker_config: dict[str, Any],
        features: NodeFeatures | None = None,
        nlp: Language | None = None,
        text_encoder: TextEncoder | None = None,
        path_sequences: Sequence[RelationSequence] = (),
        walks: bool = False,
    ):
        _check_walks(walks, graph, label_nodes)
        self.graph = graph
        self.walks = walks
        self.labels = labels
        self.label_nodes = label_nodes
        self.encoder_config = encoder_config
        self.subgraph = subgraph
        self.linker_config = dict(linker_config)
        self.nlp = nlp if nlp is not None else from_kg(graph, **self.linker_config)
        # the frozen base encoder: tokenizes, and embeds entity texts
        self.text_encoder = (
            text_encoder if text_encoder is not None else TextEncoder(encoder_config, adapt=False)
        )
        if features is None:
            table = FeatureTable(self.text_encoder.hidden_size, self.text_encoder.embed)
            features = NodeFeatures(graph, table)
        self.features = features
        self.counter = make_counter(graph, label_nodes, subgraph, path_sequences)

    def walking(self, walks: bool) -> Resources:
        """These resources, building walk subgraphs (``walks``, for the paths encoder) or
        capped neighbourhoods; everything else is shared (`kgfuse compare` trains both)."""
        if walks == self.walks:
            return self
        _check_walks(walks, self.graph, self.label_nodes)
        out = copy.copy(self)
        out.walks = walks
        return out

    @property
    def path_sequences(self) -> list[RelationSequence]:
        """The relation sequences the "sequences" counts read ([] for other counts)."""
        return list(self.counter.sequences) if isinstance(self.counter, PathCounter) else []

    def fit_sequences(
        self,
        linked: Sequence[Sequence[int]],
        masked: Sequence[bool],
        hidden: AbstractSet[int] = frozenset(),
    ) -> list[RelationSequence]:
        """Fit the "sequences" vocabulary on training texts (their linked entity ids, and
        whether each one's label facts are hidden; ``hidden``: entities whose label facts
        every text misses); a no-op for other counts."""
        if isinstance(self.counter, PathCounter):
            walks = [
                self.counter.walk_counts(ids, masked=hidden_facts(ids, hide, hidden))
                for ids, hide in zip(linked, masked, strict=True)
            ]
            self.counter.sequences = fit_sequences(walks, self.subgraph.max_sequences)
        return self.path_sequences

    @property
    def alias_table(self) -> AliasTable | None:
        """The linker's alias table, if it has one."""
        linker = self.nlp.get_pipe("kg_linker")
        assert isinstance(linker, KGLinker)  # built by from_kg(graph): its table is loaded
        return linker.alias_table

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.text_encoder.tokenize(texts)

    def link(self, texts: Sequence[str]) -> list[list[dict[str, Any]]]:
        """The linked spans of every text (`nlp.linker.linked_entities` records).

        Raises:
            DataError: ``texts`` is one string or an iterator, or holds a non-string.
        """
        check_text_list(texts)
        return [linked_entities(doc) for doc in self.nlp.pipe(list(texts), batch_size=256)]

    def entity_ids(self, spans: Sequence[dict[str, Any]]) -> list[int]:
        """The distinct entity ids of a text's linked spans, in text order."""
        return list(dict.fromkeys(self.graph.entity_id(s["iri"]) for s in spans))

    def prepare(
        self,
        texts: Sequence[str],
        labels: Sequence[int] | None = None,
        mask_label_facts: float | Sequence[bool] = 0.0,
        use_kg: bool = True,
        mask_seed: int = 0,
        spans: Sequence[list[dict[str, Any]]] | None = None,
        hidden: AbstractSet[int] = frozenset(),
    ) -> list[Prepared]:
        """Link every text (unless its ``spans`` are given) and build its subgraph.

        ``mask_label_facts``: which texts have their own entity-label facts hidden (training
        texts, and validation texts standing in for new entities): a share of the texts, drawn
        with ``mask_seed``, or one flag per text. ``hidden``: entities whose label facts no
        text sees (validation's held-out entities while a model trains: fusion/setup.py).
        ``use_kg=False`` is the no-KG control: nothing is linked and subgraphs hold only the
        label nodes, without edges."""
        check_text_list(texts)
        if spans is None:
            spans = self.link(texts) if use_kg else [[] for _ in texts]
        if isinstance(mask_label_facts, (int, float)):
            draw = random.Random(mask_seed)
            flags = [draw.random() < mask_label_facts for _ in texts]
        else:
            flags = list(mask_label_facts)
        out = []
        hidden = {e for e in hidden if e not in set(self.label_nodes)}
        for i, text in enumerate(texts):
            mine = spans[i] if use_kg else []
            linked = self.entity_ids(mine)
            masked = hidden_facts(linked, flags[i], hidden)
            graph = self._subgraph(linked, masked, use_kg)
            counts = None
            if self.counter is not None:
                counts = self.counter.features(linked, masked=masked or None)
            label = -1 if labels is None else int(labels[i])
            out.append(Prepared(text, label, linked, mine, graph, counts))
        return out

    def _subgraph(self, linked: list[int], masked: set[int], use_kg: bool) -> LinkedSubgraph:
        """The text's walk subgraph (``walks``) or capped neighbourhood, without the label
        facts of the ``masked`` entities."""
        compiled = self.graph.compiled
        if self.walks:
            assert compiled is not None and self.subgraph.hops is not None  # _check_walks
            hops = walk_length(self.subgraph.hops)
            return build_path_subgraph(compiled, linked, self.label_nodes, hops, masked, use_kg)
        return build_subgraph(self.graph, linked, self.label_nodes, self.subgraph, masked, use_kg)

    def prepare_file(
        self, path: str | Path, text_column: str = "text", label_column: str = "label"
    ) -> list[Prepared]:
        """A labelled file, linked and prepared; labels the model does not know are refused."""
        from fusion.data import read_examples, refuse_unknown_labels

        examples = read_examples(path, text_column, label_column)
        refuse_unknown_labels(path, examples, self.labels)
        index = {label: i for i, label in enumerate(self.labels)}
        return self.prepare([e.text for e in examples], [index[e.label] for e in examples])

    def inputs(
        self,
        model: FusionClassifier,
        batch: Sequence[Prepared],
        texts: Sequence[str] | None = None,
    ) -> tuple[dict[str, torch.Tensor] | None, Batch | None, torch.Tensor | None]:
        """(tokens, graph batch, counter features) for ``model``: only what it reads. Points
        the model at these node features first (this graph's, not a sibling's). ``texts``
        replaces the batch's texts (training's mention masking)."""
        model.node_features = self.features
        texts = list(texts) if texts is not None else [p.text for p in batch]
        tokens = self.tokenize(texts) if model.text_encoder is not None else None
        graphs = [p.graph for p in batch if p.graph is not None]
        graph = collate_graphs(graphs) if model.config.reads_graph else None
        counts = None
        if model.reads_counts:
            counts = torch.as_tensor(np.stack([p.counts for p in batch if p.counts is not None]))
        return tokens, graph, counts

    def with_graph(
        self,
        graph: KnowledgeGraph,
        cache: VectorCache | None = None,
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ) -> Resources:
        """The same settings over another graph (hot triples, or a shuffled-KG control).

        Node features are matched by text: an entity whose text is unchanged keeps its vector.
        With ``cache`` or ``embed``, the new or changed entities are embedded now (the others
        when a prediction first touches them). The result shares this one's encoder, so use the
        two from one thread at a time (the service swaps them between batches of its model
        thread). This one is only read.

        Args:
            graph: the new graph; it must have exactly this graph's relations (a model's
                relation ids and count feature widths are fixed when it is trained).
            cache: entity text -> feature vector, looked up before embedding a text; texts
                embedded here are added to it (a caller may persist them).
            embed: texts -> float32 [len(texts), hidden] (default: this encoder's `embed`),
                e.g. to run the embedding elsewhere.

        Raises:
            UnknownRelationError: ``graph`` has relations this graph lacks, or lacks some, or
                lacks a label's node.
            TypeError: ``graph`` is not a compiled graph (a path, say).
            KGReadOnlyError: this graph is a triple store (add triples to the store itself).
        """
        old = self.graph.compiled
        if old is None:
            raise KGReadOnlyError(
                f"this model reads its KG from the triple store {self.graph.source}; add triples "
                "to the store itself (they are read on the next prediction)"
            )
        check_graph(graph, "with_graph")
        check_relations(old, graph)
        label_nodes = []
        for i, node in enumerate(self.label_nodes):  # one per label, or none without a map
            label = self.labels[i] if i < len(self.labels) else i
            iri = self.graph.iri(node)
            if not graph.has_entity(iri):
                raise UnknownRelationError(
                    f"the new graph lacks {iri}, the KG node of the label {label!r} this model "
                    "scores through; a graph for this model must keep every label's node (extend "
                    "the model's own graph: kg.extend(predictor.resources.graph.compiled, FILES))"
                )
            label_nodes.append(graph.entity_id(iri))
        features = self.features.on_graph(graph)
        if cache is not None or embed is not None:
            features.cover(changed_entities(old, graph), embed, cache)
        return Resources(
            graph,
            self.labels,
            label_nodes,
            self.encoder_config,
            self.subgraph,
            self.linker_config,
            features=features,
            text_encoder=self.text_encoder,
            path_sequences=self.path_sequences,
            walks=self.walks,
        )


def _check_walks(walks: bool, graph: Graph, label_nodes: Sequence[int]) -> None:
    if walks and (graph.compiled is None or not label_nodes):
        raise KGFuseError(
            "the paths encoder needs a compiled KG (kg.files) and a label map (kg.label_map)"
        )


class UnknownRelationError(KGFuseError):
    """A graph's relations differ from those a model was trained with."""


def check_relations(old: Graph, new: Graph) -> None:
    """Refuse ``new`` unless its relations (and so its relation ids) are exactly ``old``'s.

    A trained model has one weight set per relation id and count features as wide as the
    relation count: a new predicate would shift the ids after it and widen the counts.

    Raises:
        UnknownRelationError: naming the new (or missing) predicates and what to do instead.
    """
    before, after = _relation_iris(old), _relation_iris(new)
    if before == after:
        return
    added = sorted(set(after) - set(before))
    if not added:
        gone = sorted(set(before) - set(after))
        raise UnknownRelationError(
            f"the graph lacks relation(s) {', '.join(gone[:10])} this model was trained with"
        )
    raise UnknownRelationError(
        f"the triples use {len(added)} predicate(s) this model was not trained with: "
        f"{', '.join(added[:10])}{' ...' if len(added) > 10 else ''}. A model's relations are "
        "fixed when it is trained: retrain it with these triples in its KG (kgfuse train), or "
        f"state the facts with the predicates it knows ({', '.join(before[:10])}"
        f"{' ...' if len(before) > 10 else ''})"
    )


def _relation_iris(graph: Graph) -> list[str]:
    return [graph.relation_iri(r) for r in range(graph.num_relations)]


def changed_entities(old: KnowledgeGraph, new: KnowledgeGraph) -> list[int]:
    """Entity ids of ``new`` that ``old`` lacks, or whose text differs there."""
    seen = np.zeros(new.num_entities, dtype=bool)
    for o, n in enumerate(id_map(old, new).tolist()):
        if n >= 0 and old.text(o) == new.text(n):
            seen[n] = True
    return np.flatnonzero(~seen).tolist()
