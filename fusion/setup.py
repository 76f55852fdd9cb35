"""The set-up of a training run, before the first step: data, links, validation, choices.

    workspace = Workspace.open(config, run_dir)     # KG, linker, frozen encoder, node features
    plan = plan_run(config, workspace)                # splits, links, auto settings, resources

`plan_run` reads the training (and val) files, links every text once, carves validation out of
the training texts by held-out entity when no val file is given (fusion/split.py), decides what
validation selects on (`Selection`, fusion/selection.py), resolves every ``auto`` setting
(fusion/auto.py, and the reference for hops: fusion/reference.py) and builds the model's
`Resources`. Test files are read and linked here too, but only `fusion.train.run` uses them,
after training, to report: nothing on this page looks at a test text.

A `Workspace` holds what does not depend on the seed or the settings, so that `kgfuse compare`
and `kgfuse tune` build it once for many runs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import kg
from fusion.auto import Choice, holdout_candidates, label_facts_restate_labels
from fusion.choice_splits import LinkedTexts, extra_splits, own_split
from fusion.config import ConfigError, RunConfig
from fusion.data import Splits, load_splits
from fusion.encoder import TextEncoder
from fusion.features import FeatureCache, FeatureTable, NodeFeatures, encoder_key
from fusion.path_counts import PathCounter
from fusion.reference import HOP_CHOICES, HopScores, choose_hops
from fusion.resources import Resources
from fusion.selection import Selection, SelectionWarning, choose_selection
from fusion.split import partition_validation, validation_split
from kg.protocol import Graph
from kg.store_graph import StoreGraph
from nlp.linker import from_kg
from nlp.texts import read_label_map

# Selection, SelectionWarning and choose_selection live in fusion/selection.py; imported from
# here by callers that plan runs
__all__ = [
    "DEFAULT_HOPS",
    "FEATURE_FOLDER",
    "RunPlan",
    "Selection",
    "SelectionWarning",
    "Workspace",
    "choose_selection",
    "load_data",
    "open_graph",
    "plan_run",
]

DEFAULT_HOPS = 2  # where no reference can choose (no label map, or a triple store)
# the extra splits of the automatic choices hold out validation's own share of the texts, within:
MIN_SHARE, MAX_SHARE = 0.05, 0.5
FEATURE_FOLDER = (
    "node-features"  # run/cache/node-features/: vectors by entity text (fusion/features.py)
)


@dataclass
class Workspace:
    """The KG, its label nodes, the linker, the frozen encoder and the node features; plus
    every text's links and frozen embedding, memoised (they depend on nothing else)."""

    config: RunConfig
    graph: Graph
    nlp: Any
    text_encoder: TextEncoder
    linker_config: dict[str, Any]
    features: NodeFeatures
    feature_cache: tuple[FeatureCache, Path] | None = None  # the vectors kept between runs
    links: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # pooled, not normalized
    # `plan_run`'s memo: the hops choice and the reference's validation accuracy by hops
    hop_choices: dict[tuple[Any, ...], tuple[Choice, HopScores | None]] = field(
        default_factory=dict
    )

    def save_feature_cache(self) -> None:
        """Keep the node features embedded so far for the next run (``run/cache/``): only at the
        end of a run, so that a failing run writes no cache."""
        if self.feature_cache is not None:
            cache, folder = self.feature_cache
            cache.save(folder, f"run-{time.time_ns()}")

    @classmethod
    def open(cls, config: RunConfig, run_dir: Path | None) -> Workspace:
        graph = open_graph(config)
        linker = linker_options(config)
        nlp = from_kg(graph, **linker)
        text_encoder = TextEncoder(config.encoder, adapt=False)
        kept = None
        if run_dir is not None:
            folder = run_dir / "cache" / FEATURE_FOLDER
            kept = (FeatureCache.load(folder, encoder_key(text_encoder)), folder)
        table = FeatureTable(text_encoder.hidden_size, text_encoder.embed, cache=kept and kept[0])
        features = NodeFeatures(graph, table)
        return cls(config, graph, nlp, text_encoder, linker, features, kept)

    def link(self, texts: list[str]) -> list[list[dict[str, Any]]]:
        todo = list(dict.fromkeys(t for t in texts if t not in self.links))
        for text, doc in zip(todo, self.nlp.pipe(todo, batch_size=256), strict=True):
            from nlp.linker import linked_entities

            self.links[text] = linked_entities(doc)
        return [self.links[t] for t in texts]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Frozen base-encoder vectors of ``texts``, L2-normalized (the reference's text
        features)."""
        raw = self.pooled(texts)
        return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)

    def pooled(self, texts: list[str]) -> np.ndarray:
        """Frozen base-encoder vectors of ``texts`` as pooled, not normalized: what the text
        head reads before training (`fusion.probe`)."""
        todo = list(dict.fromkeys(t for t in texts if t not in self.embeddings))
        if todo:
            vectors = self.text_encoder.embed(todo, normalize=False)
            for text, vector in zip(todo, vectors, strict=True):
                self.embeddings[text] = vector
        if not texts:
            return np.zeros((0, self.text_encoder.hidden_size), dtype=np.float32)
        return np.stack([self.embeddings[t] for t in texts])

    def entity_ids(self, spans: list[dict[str, Any]]) -> list[int]:
        return list(dict.fromkeys(self.graph.entity_id(s["iri"]) for s in spans))


def linker_options(config: RunConfig) -> dict[str, Any]:
    """The kg_linker settings (`nlp.linker.from_kg` keywords) the config's ``linker`` section
    describes."""
    linker: dict[str, Any] = {
        "threshold": config.linker.threshold,
        "head_match": config.linker.head_match,
        "types": list(config.linker.types),
    }
    if config.linker.aliases:
        linker["aliases"] = config.linker.aliases
    return linker


def open_graph(config: RunConfig) -> Graph:
    """The run's KG: compiled from files, or a view of a triple store read on demand."""
    if config.kg.source:
        return StoreGraph.connect(config.kg.source)
    graph = kg.open_or_load(config.kg.files)
    if graph.num_entities == 0:  # else the label map's first row would take the blame
        raise ConfigError(
            f"the KG is empty: kg.files {list(map(str, config.kg.files))} hold no triple; "
            "point kg.files at the triples files (or compiled KG folder) of your domain"
        )
    return graph


def load_data(config: RunConfig, carve_val: bool | None = None) -> Splits:
    """The labelled files of ``config``. Validation is carved at random here only for
    ``data.val_split: random``; "entity" carving needs the links (`plan_run`)."""
    d = config.data
    return load_splits(
        train=d.train or None,
        val=d.val or None,
        tests=dict(d.tests),
        path=d.path or None,
        split_column=d.split_column or None,
        text_column=d.text_column,
        label_column=d.label_column,
        val_fraction=d.val_fraction,
        test_fraction=d.test_fraction,
        seed=config.train.seed,
        carve_val=d.val_split == "random" if carve_val is None else carve_val,
    )


@dataclass
class RunPlan:
    """Everything a training run needs before its first step."""

    config: RunConfig  # every ``auto`` setting resolved
    splits: Splits  # val_unseen flags set
    spans: dict[str, list[list[dict[str, Any]]]]  # "train", "val", "test:NAME" -> per text
    train_masked: list[bool]  # whose own label facts are hidden, per training text
    resources: Resources
    selection: Selection
    choices: dict[str, dict[str, object]]  # automatic setting -> value and reason
    hide_val_facts: bool = False  # whether val:unseen texts come without their label facts
    hidden: frozenset[int] = frozenset()  # entities whose label facts training and val miss

    @property
    def val_masked(self) -> list[bool]:
        """val:unseen texts stand in for new entities: when the KG's label facts restate the
        labels (fusion/auto.py), a new entity has none, so theirs are hidden. This follows the
        KG, not ``train.mask_label_facts``, so runs that differ in it are judged alike. The
        facts of every held-out entity are hidden from every training and validation text too
        (`hidden`), as a new entity's are: a val:unseen text must not read a held-out
        relative's fact that no test entity's relative would have."""
        return [u and self.hide_val_facts for u in self.splits.val_unseen]


def plan_run(config: RunConfig, workspace: Workspace, splits: Splits | None = None) -> RunPlan:
    """Read, link and split the data, choose the automatic settings, build the resources."""
    graph = workspace.graph
    splits = splits or load_data(config)
    label_nodes = (
        read_label_map(config.kg.label_map, graph, splits.labels) if config.kg.label_map else []
    )
    choices: dict[str, dict[str, object]] = {}  # in the order they are made
    linked = _link_and_validate(config, workspace, splits, label_nodes, choices)
    splits, train_ids = linked.splits, linked.train_ids
    unseen_entities = linked.unseen_entities
    selection = choose_selection(sum(splits.val_unseen), len(unseen_entities), len(splits.val))
    choices["selection"] = Choice(selection.on, selection.reason).to_dict()
    masking = _mask_label_facts(config, graph, splits, label_nodes, train_ids, unseen_entities)
    choices.update(masking.choices)
    hops = _resolve_hops(
        config,
        workspace,
        masking.mask,
        lambda: _choose_hops(config, workspace, splits, label_nodes, train_ids, masking, selection),
    )
    choices.update(hops.choices)
    probe = resolve_probe_init(config, hops.scores)
    if config.train.probe_init is None:
        choices["train.probe_init"] = probe.to_dict()
    # the resolved train settings; `fusion.train` reads probe_init from here for auto only, as
    # a text-only run that shares this plan (`kgfuse compare`) always starts from the probe
    train = replace(config.train, mask_label_facts=masking.mask, probe_init=bool(probe.value))
    resolved = replace(
        config,
        subgraph=replace(config.subgraph, hops=hops.value),
        train=train,
    )
    resources = Resources(
        graph,
        splits.labels,
        label_nodes,
        resolved.encoder,
        resolved.subgraph,
        workspace.linker_config,
        features=workspace.features,
        nlp=workspace.nlp,
        text_encoder=workspace.text_encoder,
        walks=config.model.reads_walks,
    )
    resources.fit_sequences(train_ids, masking.train_masked, masking.hidden)
    spans = {"train": linked.train_spans, "val": linked.val_spans}
    for name, examples in splits.tests.items():
        spans[f"test:{name}"] = workspace.link([e.text for e in examples])
    return RunPlan(
        resolved,
        splits,
        spans,
        masking.train_masked,
        resources,
        selection,
        choices,
        masking.hide_val_facts,
        masking.hidden,
    )


@dataclass
class _Linked:
    """Training and validation texts, linked, with validation split into val:unseen/val:seen."""

    splits: Splits  # val set, val_unseen flags set
    train_spans: list[list[dict[str, Any]]]
    train_ids: list[list[int]]  # the entities each training text mentions
    val_spans: list[list[dict[str, Any]]]
    unseen_entities: set[int]  # held-out-kind entities val:unseen mentions and training lacks


def _link_and_validate(
    config: RunConfig,
    workspace: Workspace,
    splits: Splits,
    label_nodes: list[int],
    choices: dict[str, dict[str, object]],
) -> _Linked:
    """Link the training and validation texts. Without a val file, validation is carved out of
    the training texts by held-out entity (recorded in ``choices``); a given val file's texts
    about entities training lacks are its val:unseen ones."""
    graph = workspace.graph
    train_spans = workspace.link([e.text for e in splits.train])
    train_ids = [workspace.entity_ids(s) for s in train_spans]
    types = config.data.holdout_types
    carved = not splits.val
    if carved:  # carve val:unseen and val:seen out of the training texts
        candidates, kind = holdout_candidates(graph, label_nodes, train_ids, types)
        iris = {graph.iri(e) for e in candidates}
        mentions = [[s["iri"] for s in spans] for spans in train_spans]
        split = validation_split(
            splits.train,
            mentions,
            config.data.val_fraction,
            config.data.val_seen_fraction,
            config.train.seed,
            iris,
        )
        splits = replace(
            splits,
            train=split.train,
            val=split.unseen + split.seen,
            val_unseen=[True] * len(split.unseen) + [False] * len(split.seen),
        )
        held = len(split.held_out)
        choices["validation"] = Choice(
            f"{len(split.unseen)} val:unseen + {len(split.seen)} val:seen texts",
            f"{held} held-out {kind}; no training text mentions them",
        ).to_dict()
        train_spans = workspace.link([e.text for e in splits.train])
        train_ids = [workspace.entity_ids(s) for s in train_spans]
    val_spans = workspace.link([e.text for e in splits.val])
    if not carved:  # a given val file: its texts about entities training lacks are val:unseen
        val_ids = [workspace.entity_ids(s) for s in val_spans]
        # the kind's entities among val's mentions too: those training lacks are the point
        candidates, _ = holdout_candidates(graph, label_nodes, train_ids + val_ids, types)
        if not splits.val_unseen:
            flags = partition_validation(val_ids, train_ids, candidates)
            splits = replace(splits, val_unseen=flags)
    if not splits.val:
        raise ConfigError(
            "no validation texts: give data.val, or a training file large enough to carve "
            "data.val_fraction from"
        )
    unseen_entities = {
        e
        for spans, u in zip(val_spans, splits.val_unseen, strict=True)
        if u
        for e in workspace.entity_ids(spans)
        if e in candidates
    } - {e for ids in train_ids for e in ids}
    return _Linked(splits, train_spans, train_ids, val_spans, unseen_entities)


@dataclass
class _Masking:
    """Whose label facts are hidden, and why (``choices``)."""

    mask: float  # train.mask_label_facts, resolved
    train_masked: list[bool]  # per training text
    hide_val_facts: bool
    hidden: frozenset[int]
    choices: dict[str, dict[str, object]]


def _mask_label_facts(
    config: RunConfig,
    graph: Graph,
    splits: Splits,
    label_nodes: list[int],
    train_ids: list[list[int]],
    unseen_entities: set[int],
) -> _Masking:
    """Whether the KG's label facts restate the labels (fusion/auto.py): then val:unseen
    texts and the held-out entities lose theirs, and ``train.mask_label_facts: auto`` hides a
    share of the training texts' own."""
    index = {label: i for i, label in enumerate(splits.labels)}
    gold = [index[e.label] for e in splits.train]
    compiled = graph.compiled
    if label_nodes and compiled is not None:
        facts = label_facts_restate_labels(compiled, label_nodes, train_ids, gold)
    else:
        facts = Choice(0.0, "no label map, or a triple store: no label facts to hide")
    hide_val_facts = float(facts.value) > 0  # type: ignore[arg-type]
    hidden = frozenset(unseen_entities) if hide_val_facts else frozenset()
    choices: dict[str, dict[str, object]] = {}
    mask = config.train.mask_label_facts
    if mask is None:
        mask = float(facts.value)  # type: ignore[arg-type]
        choices["train.mask_label_facts"] = facts.to_dict()
    elif hide_val_facts:
        choices["validation.label_facts"] = Choice("hidden for val:unseen", facts.reason).to_dict()
    draw = random.Random(config.train.seed)
    train_masked = [draw.random() < mask for _ in splits.train]
    return _Masking(mask, train_masked, hide_val_facts, hidden, choices)


@dataclass
class _Hops:
    value: int | None  # subgraph.hops, resolved (None only where it was never auto)
    choices: dict[str, dict[str, object]]
    scores: HopScores | None  # the reference's validation accuracy by hops (0: text alone)


def _resolve_hops(
    config: RunConfig,
    workspace: Workspace,
    mask: float,
    choose: Callable[[], tuple[Choice, HopScores | None]],
) -> _Hops:
    """``subgraph.hops`` as set, or chosen (``choose``: `_choose_hops`); tuning trials with the
    same seed, masking and data share one choice through the workspace. The reference's scores are
    measured also where hops are set but ``train.probe_init`` is auto and the model has both a
    text head and a KG branch (`resolve_probe_init`)."""
    hops = config.subgraph.hops
    probe_asks = config.train.probe_init is None and config.model.mode not in ("text", "graph")
    if hops is not None and not probe_asks:
        return _Hops(hops, {}, None)
    memo = (config.train.seed, mask, repr(config.data), config.subgraph.max_sequences)
    known = workspace.hop_choices.get(memo)
    if known is None:
        known = workspace.hop_choices[memo] = choose()
    choice, scores = known
    if hops is not None:
        return _Hops(hops, {}, scores)
    value = choice.value
    assert isinstance(value, int), "hops are chosen among integers"
    return _Hops(value, {"subgraph.hops": choice.to_dict()}, scores)


def resolve_probe_init(config: RunConfig, scores: HopScores | None) -> Choice:
    """``train.probe_init: auto`` for a model with a KG branch (a text-only model always starts
    from the probe): on where the KG's label paths do not lift the reference on validation by
    more than one standard error.
    There the text carries the signal and a converged start helps; where the KG carries what
    the text lacks, a text head that starts converged fits the training set first and the KG
    branches learn less (modality competition), so the head starts at random."""
    if config.train.probe_init is not None:
        return Choice(config.train.probe_init, "as set")
    if config.model.mode == "text":
        return Choice(
            True, "a text-only model: no KG branch for a converged text head to crowd out"
        )
    if config.model.mode == "graph":
        return Choice(False, "a graph-only model has no text head")
    if scores is None or 0 not in scores.accuracy:
        return Choice(
            False,
            "no reference to weigh the text against the KG's label paths (no label map, or a "
            "triple store): the text head starts at random",
        )
    best, lifts = scores.lift_of_paths()
    accuracy = scores.accuracy
    figures = f"text alone {accuracy[0]:.3f}, with {best}-hop label paths {accuracy[best]:.3f}"
    if not lifts:
        return Choice(
            True,
            f"the reference's validation accuracy: {figures} ({scores.texts} texts); the "
            "paths add nothing beyond one standard error, so the text head starts from the "
            "probe",
        )
    return Choice(
        False,
        f"the reference's validation accuracy: {figures}; the KG carries what "
        "the text lacks, so the text head starts at random and leaves the KG branches "
        "room to learn",
    )


def _choose_hops(
    config: RunConfig,
    workspace: Workspace,
    splits: Splits,
    label_nodes: list[int],
    train_ids: list[list[int]],
    masking: _Masking,
    selection: Selection,
) -> tuple[Choice, HopScores | None]:
    """``subgraph.hops: auto`` by the reference on validation's own split and, where validation
    selects on val:unseen, ``data.choice_splits - 1`` more carved the same way
    (fusion/choice_splits.py)."""
    graph = workspace.graph.compiled
    if not label_nodes or graph is None:
        reason = "no label map, or a triple store: no reference to choose by"
        return Choice(DEFAULT_HOPS, reason), None
    seed = config.train.seed
    val_ids = [workspace.entity_ids(s) for s in workspace.link([e.text for e in splits.val])]
    chosen = [i for i, f in enumerate(selection.flags(splits.val_unseen)) if f]
    counter = PathCounter(graph, label_nodes, hops=max(HOP_CHOICES))
    train = LinkedTexts(splits.train, train_ids, masking.train_masked)
    val = LinkedTexts(
        [splits.val[i] for i in chosen],
        [val_ids[i] for i in chosen],
        [splits.val_unseen[i] and masking.hide_val_facts for i in chosen],
    )
    own = own_split(counter, workspace.embed, splits.labels, train, val, masking.hidden, seed)
    folds = [own]
    if selection.on == "unseen" and config.data.choice_splits > 1:
        pool = LinkedTexts(
            list(splits.train) + list(splits.val),
            train_ids + val_ids,
            [False] * (len(splits.train) + len(splits.val)),
        )
        candidates, _ = holdout_candidates(graph, label_nodes, pool.ids, config.data.holdout_types)
        share = sum(splits.val_unseen) / len(pool.examples)  # validation's own share
        folds += extra_splits(
            counter,
            workspace.embed,
            splits.labels,
            pool,
            candidates,
            config.data.choice_splits - 1,
            min(max(share, MIN_SHARE), MAX_SHARE),
            seed,
            masking.hide_val_facts,
            masking.mask,
        )
    return choose_hops(counter, folds, config.subgraph.max_sequences)
