"""``kgfuse check CONFIG``: what a training run would see, before it trains.

It runs the set-up of ``kgfuse train`` (the KG, the linker, the splits and the automatic
choices: fusion/setup.py) and stops before the first step. Then it reports:

- per split, how many texts the linker links, and how many entities it finds;
- per training and validation split, how many texts have a label path (within the chosen hops,
  with label facts hidden as training hides them) to their own class, and for how many the
  class that the most label paths reach is their own: a classifier that reads the KG alone;
- the automatic choices with their figures. Where a label map names the classes' KG nodes,
  the reference (frozen text embeddings plus label-path counts, fusion/reference.py) was fitted
  on the text alone and with paths, on val:unseen texts: whether the KG can help on these texts.

Test files are linked, to report their coverage, and nothing else: no figure that reads their
labels is shown, so nothing here invites a choice made on a test set. Nothing is written.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fusion.examples import hidden_facts
from fusion.path_counts import PathCounter
from fusion.reference import HopScores, KGHelpWarning, standard_error
from fusion.settings import RunConfig
from fusion.setup import RunPlan, Workspace, plan_run


@dataclass(frozen=True)
class SplitCheck:
    """One split, as training would read it."""

    name: str
    texts: int
    linked: int  # texts with at least one linked entity
    entities: int  # linked entities, summed over texts
    reachable: int | None = None  # texts with a label path to their own class (None: not shown)
    paths_pick_label: int | None = None  # texts whose most-reached class is their own


@dataclass(frozen=True)
class CheckReport:
    """What `check` found; ``to_dict`` is the JSON of ``kgfuse check --json``."""

    kg: dict[str, object]  # entities, relations, triples, as the backend knows them
    classes: int
    classes_in_kg: int  # classes whose label node the label map names (0: no label map)
    hops: int | None
    splits: list[SplitCheck]
    choices: dict[str, dict[str, object]]
    reads_kg: bool  # whether the configured model has a KG branch (not model.mode: text)
    reference: dict[str, Any] = field(default_factory=dict)  # accuracy by hops, texts, verdict
    missing: str = ""  # why there is no label-path figure or no reference, where there is none
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(config: RunConfig) -> CheckReport:
    """The set-up of a training run of ``config``, reported (see the module docstring).

    Raises what ``kgfuse train`` raises on the same inputs (`fusion.config.ConfigError`,
    `kg.errors.KGLoadError`, `nlp.texts.DataError`, ...), before anything is trained."""
    started = time.perf_counter()
    workspace = Workspace.open(config, None)  # no run folder: no feature cache is written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KGHelpWarning)  # the report's verdict says it
        plan = plan_run(config, workspace)
    graph = workspace.graph
    counter = _path_counter(plan)
    splits = plan.splits
    train = zip(splits.train, plan.spans["train"], plan.train_masked, strict=True)
    rows = [_split("train", plan, counter, list(train))]
    unseen = splits.val_unseen or [False] * len(splits.val)
    val = list(zip(splits.val, plan.spans["val"], plan.val_masked, unseen, strict=True))
    for name, wanted in (("val:unseen", True), ("val:seen", False)):
        rows.append(_split(name, plan, counter, [(e, s, f) for e, s, f, u in val if u == wanted]))
    for name in splits.tests:
        spans = plan.spans[f"test:{name}"]
        rows.append(_coverage(f"test:{name}", spans))
    reference = _reference(workspace, plan)
    return CheckReport(
        kg={k: v for k, v in graph.stats().items() if k in ("entities", "relations", "triples")},
        classes=len(splits.labels),
        classes_in_kg=len(plan.resources.label_nodes),
        hops=plan.config.subgraph.hops,
        splits=[r for r in rows if r.texts],
        choices=plan.choices,
        reads_kg=config.model.mode != "text",
        reference=reference,
        missing=_missing(plan, fitted=bool(reference)),
        seconds=time.perf_counter() - started,
    )


def _path_counter(plan: RunPlan) -> PathCounter | None:
    """The run's label-path counter, or one at its hops where it counts something else
    (``subgraph.counts``); None without a label map or an in-memory KG."""
    resources = plan.resources
    if isinstance(resources.counter, PathCounter):
        return resources.counter
    compiled, hops = resources.graph.compiled, plan.config.subgraph.hops
    if compiled is None or not resources.label_nodes or hops is None:
        return None
    return PathCounter(compiled, resources.label_nodes, hops=hops)


def _missing(plan: RunPlan, fitted: bool) -> str:
    """Why the report lacks label-path figures or the reference's verdict ("" if it has both;
    ``fitted``: whether the set-up fitted the reference)."""
    if not plan.resources.label_nodes:
        return "the config has no kg.label_map, so no class has a KG node for paths to reach"
    if plan.resources.graph.compiled is None:
        return "the KG is a triple store: label paths are counted on an in-memory KG only"
    if not fitted:
        return (
            "subgraph.hops is set and nothing else asks for the reference (a text- or "
            "graph-only model, or train.probe_init set): leave subgraph.hops at auto to fit it"
        )
    return ""


def _coverage(name: str, spans: list[list[dict[str, Any]]]) -> SplitCheck:
    linked = sum(1 for s in spans if s)
    return SplitCheck(name, len(spans), linked, sum(len(s) for s in spans))


def _split(
    name: str,
    plan: RunPlan,
    counter: PathCounter | None,
    texts: list[tuple[Any, list[dict[str, Any]], bool]],
) -> SplitCheck:
    """Coverage, plus what the label paths say of each text's own class (``texts``: example,
    linked spans, whether its own label facts are hidden), with the label facts hidden as
    training hides them (a text's own, where masked; every held-out entity's)."""
    coverage = _coverage(name, [spans for _, spans, _ in texts])
    if counter is None:  # no label map, or a triple store
        return coverage
    resources, labels = plan.resources, plan.splits.labels
    reachable = picks = 0
    for example, mine, hide in texts:
        ids = resources.entity_ids(mine)
        walks = counter.walk_counts(ids, masked=hidden_facts(ids, hide, plan.hidden))
        if not walks:
            continue
        per_class = np.sum(list(walks.values()), axis=0)
        own = labels.index(example.label)
        reachable += bool(per_class[own] > 0)
        picks += bool(per_class[own] > 0 and per_class.argmax() == own)
    return SplitCheck(name, coverage.texts, coverage.linked, coverage.entities, reachable, picks)


def _reference(workspace: Workspace, plan: RunPlan) -> dict[str, Any]:
    """The reference's pooled validation accuracy by hops (0: the text alone), when the set-up
    measured it, and whether the label paths at the run's hops (else at the best) lift it above
    the text alone by more than one standard error. ``texts_kind`` names the texts it was
    measured on: val:unseen, or all of validation where there is no val:unseen split."""
    scores: list[HopScores] = [s for _, s in workspace.hop_choices.values() if s is not None]
    if not scores:
        return {}
    found = scores[0]
    best, _ = found.lift_of_paths()
    hops = plan.config.subgraph.hops
    shown = hops if hops in found.accuracy else best
    accuracy = found.accuracy
    lifts = accuracy[shown] > accuracy[0] + standard_error(accuracy[shown], found.texts)
    return {
        "accuracy_by_hops": {str(h): a for h, a in sorted(accuracy.items())},
        "texts": found.texts,
        "texts_kind": "val:unseen" if plan.selection.on == "unseen" else "validation",
        "best_hops": best,
        "hops": shown,
        "kg_helps": bool(lifts),
    }
