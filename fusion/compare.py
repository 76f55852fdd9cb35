"""``kgfuse compare CONFIG``: the ablations, controls and reference that show where a gain comes from.

Trains, on the same data, links and node features (seed N plans its own run, validation split
and automatic settings included, as ``kgfuse train CONFIG train.seed=N`` does, so every row can
be reproduced by one command):
- ``text``: the LoRA-tuned encoder alone (what a user would build instead), over every seed;
- ``fused``: text + graph as the config says, over every seed;
- ``reference``: frozen encoder embeddings + label-path counts by relation sequence, read by a
  logistic regression whose C is chosen on val:unseen (fusion/reference.py): the strong simple
  baseline fused has to beat, over every seed (seconds each); ``reference-counts``: the same
  regression on the label-path counts alone, the bar of a model that reads no text (``graph``);
- ``default`` (``--with-default``): fused with the config's KG, data and label map only, every
  other setting kgfuse's own, over every seed;
- ``graph``: the graph encoder alone, over every seed; ``counter``: the text vector plus the label
  counts, no GNN;
- the graph-encoder ablations (with a label map): fused and graph with the encoder the config
  does not use (``fused-paths`` and ``graph-paths``, or ``fused-rgcn`` and ``graph-rgcn``), and
  ``fused-no-gnn``: the text plus the label counts, read as fused reads them, no graph encoder;
  and fused with ``model.counts`` flipped (``fused-no-counts``, or ``fused-counts``);
- ``fused-shuffled``: fused on a degree-preserving rewiring of the KG (a gain that survives it
  does not come from the KG's facts); ``fused-no-kg``: fused with nothing linked and no edges;
- the training-option ablations, each fused with one option off when the config uses it, else
  on at a stated value: mention masking (``fused-no-mention-mask`` or
  ``fused-mention-mask-0.5``), mention swap (``fused-no-swap`` or ``fused-swap-0.5``) and FGM
  adversarial training (``fused-no-fgm`` or ``fused-fgm-1``); and the linear-probe start of the
  text head (``fused-no-probe`` or ``fused-probe``, against what ``auto`` chose for the seed),
  over every seed, since its automatic choice rests on it.
Prints one table (mean ± std over seeds): val:unseen accuracy, every test set's accuracy and
macro-F1, the ECE of the last test set after temperature scaling, and training time; then the
explanation faithfulness of the first fused run (fusion/explain.py). Writes JSON. The table
and the JSON come from fusion/compare_report.py.
Finished runs are reused when compare runs again with the same settings and data.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from fusion.calibration import calibration_report, fit_temperature
from fusion.compare_report import print_report, record, summarize, write_json
from fusion.config import ConfigError, RunConfig, config_from_dict
from fusion.data import Example
from fusion.examples import hidden_facts
from fusion.metrics import classification_metrics
from fusion.path_counts import PathCounter, fit_sequences
from fusion.reference import count_features, fit_reference, full_logits
from fusion.setup import RunPlan, Workspace, plan_run
from fusion.train import StaleRunError, TrainResult, run, with_overrides
from kg.rewire import rewire

console = Console()

# print_report and write_json (fusion/compare_report.py) are imported from here by the CLI
__all__ = [
    "REFERENCES",
    "TOGGLES",
    "VARIANTS",
    "Variant",
    "ablation",
    "compare",
    "default_config",
    "encoder_ablation",
    "evaluate_references",
    "pick_variants",
    "print_report",
    "train_or_reuse",
    "write_json",
]


@dataclass(frozen=True)
class Variant:
    name: str
    mode: str
    seeded: bool  # repeated over every seed (else the first seed only)
    graph: str = "kg"  # "kg", "shuffled" or "none"
    toggle: str = ""  # a train setting, off when the config uses it, else on (`ablation`)
    encoder: str = ""  # model.graph_encoder: "" the config's, "other" (`encoder_ablation`)
    toggle_counts: bool = False  # model.counts flipped: fused-no-counts, or fused-counts


VARIANTS = (
    Variant("text", "text", True),
    Variant("fused", "fused", True),
    Variant("graph", "graph", True),
    Variant("counter", "counter", False),
    Variant("fused-shuffled", "fused", False, "shuffled"),
    Variant("fused-no-kg", "fused", False, "none"),
    Variant("fused-mentions", "fused", False, toggle="mask_mentions"),
    Variant("fused-swap", "fused", False, toggle="swap_mentions"),
    Variant("fused-fgm", "fused", False, toggle="adversarial"),
    Variant("fused-probe", "fused", True, toggle="probe_init"),
    Variant("fused-encoder", "fused", True, encoder="other"),
    Variant("graph-encoder", "graph", True, encoder="other"),
    Variant("fused-no-gnn", "fused", False, encoder="none"),
    Variant("fused-counts", "fused", False, toggle_counts=True),
)
# train setting -> (the row's name for it, its value when the ablation turns it on)
TOGGLES: dict[str, tuple[str, float | bool]] = {
    "mask_mentions": ("mention-mask", 0.5),
    "swap_mentions": ("swap", 0.5),
    "adversarial": ("fgm", 1.0),
    "probe_init": ("probe", True),
}


def ablation(
    config: RunConfig, setting: str, resolved: float | bool | None = None
) -> tuple[str, float | bool]:
    """The ablation of a train ``setting`` (`TOGGLES`): off when ``config`` uses it (or, when
    it is ``auto``, when it ``resolved`` to on), else on at its stated value; the row name says
    which (``fused-no-swap``, ``fused-swap-0.5``, ``fused-probe`` for a switch)."""
    name, on = TOGGLES[setting]
    value = getattr(config.train, setting)
    current = resolved if value is None else value
    if current:  # a share above 0, or a switch that is on
        return f"fused-no-{name}", type(on)(0)
    return (f"fused-{name}", on) if isinstance(on, bool) else (f"fused-{name}-{on:g}", on)


# the regressions compare fits (fusion/reference.py), by row name: does the row read the text?
REFERENCES = {"reference": True, "reference-counts": False}


def pick_variants(rows: str) -> tuple[tuple[Variant, ...], tuple[str, ...]]:
    """(variants, references) from ``--rows`` (comma-separated names; "" for all).

    Raises:
        ConfigError: an unknown row, named with the known ones.
    """
    names = [r.strip() for r in rows.split(",") if r.strip()]
    if not names:
        return VARIANTS, tuple(REFERENCES)
    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in known and n not in REFERENCES]
    if unknown:
        raise ConfigError(
            f"unknown row(s) {unknown} for --rows; choose from {', '.join([*REFERENCES, *known])}"
        )
    return tuple(v for v in VARIANTS if v.name in names), tuple(r for r in REFERENCES if r in names)


def encoder_ablation(config: RunConfig) -> str:
    """The graph encoder the encoder ablation trains: the one ``config`` does not use."""
    return "rgcn" if config.model.graph_encoder == "paths" else "paths"


def train_or_reuse(config: RunConfig, progress: bool = True, **kwargs: Any) -> TrainResult:
    """`run`, reusing a finished run of the same settings and data in ``config.output`` (only
    evaluation runs again); a run of other settings or data there is deleted and trained afresh."""
    try:
        return run(config, progress=progress, **kwargs)
    except StaleRunError:
        shutil.rmtree(config.output)
        return run(config, progress=progress, **kwargs)


def default_config(config: RunConfig) -> RunConfig:
    """``config`` with only its KG, data, label map, encoder folder and output kept: what a new
    user's first config says."""
    kept = {
        "kg": {
            "files": list(config.kg.files),
            "endpoint": config.kg.endpoint,
            "store": config.kg.store,
            "label_map": config.kg.label_map,
        },
        "data": config.to_dict()["data"],
        "encoder": {"path": config.encoder.path},
        "train": {"seed": config.train.seed, "threads": config.train.threads},
        "output": config.output,
    }
    return config_from_dict(kept, "the default config")


def evaluate_references(
    plan: RunPlan, workspace: Workspace, names: tuple[str, ...] = tuple(REFERENCES)
) -> dict[str, tuple[dict[str, dict[str, Any]], float]]:
    """The regressions ``names`` (`REFERENCES`: fusion/reference.py, with or without the text
    vectors) trained on ``plan``'s training texts, C and temperature chosen on what validation
    selects on, scored on val:unseen and every test set. The label-path counts are walked once
    for all of them, and the texts embedded only when one reads them. Returns, per name, the
    metrics and the seconds it took: the shared features plus its own fit."""
    graph, resources, splits = workspace.graph.compiled, plan.resources, plan.splits
    if not resources.label_nodes or graph is None:
        raise ConfigError(
            "the reference counts label paths in a compiled KG: set kg.label_map and kg.files"
        )
    started = time.perf_counter()
    hops = plan.config.subgraph.hops or 2
    counter = PathCounter(graph, resources.label_nodes, hops=hops)
    index = {label: i for i, label in enumerate(splits.labels)}
    reads_text = any(REFERENCES[name] for name in names)

    def features(
        part: str, examples: list[Any], masked: list[bool]
    ) -> tuple[dict[bool, np.ndarray], np.ndarray]:
        """{reads text: features} of ``examples``, and their labels."""
        ids = [workspace.entity_ids(s) for s in plan.spans[part]]
        # as in training: the held-out entities' label facts are hidden, but not from tests
        hidden = frozenset() if part.startswith("test:") else plan.hidden
        walks = [
            counter.walk_counts(i, hidden_facts(i, m, hidden))
            for i, m in zip(ids, masked, strict=True)
        ]
        if part == "train":
            counter.sequences = fit_sequences(walks, plan.config.subgraph.max_sequences)
        counts = count_features(counter, walks, hops)
        x = {False: counts}
        if reads_text:
            x[True] = np.hstack([workspace.embed([e.text for e in examples]), counts])
        return x, np.array([index[e.label] for e in examples])

    tx, ty = features("train", splits.train, plan.train_masked)
    vx, vy = features("val", splits.val, plan.val_masked)
    tests = {
        f"test:{name}": features(f"test:{name}", examples, [False] * len(examples))
        for name, examples in splits.tests.items()
    }
    shared = time.perf_counter() - started
    chosen = np.array(plan.selection.flags(splits.val_unseen), dtype=bool)
    unseen = np.array(splits.val_unseen, dtype=bool)
    results: dict[str, tuple[dict[str, dict[str, Any]], float]] = {}
    for name in names:
        began, text = time.perf_counter(), REFERENCES[name]
        train_x, val_x = tx[text], vx[text]
        fit = fit_reference(train_x, ty, val_x[chosen], vy[chosen], len(splits.labels))
        temperature = fit_temperature(
            full_logits(fit, val_x[chosen], len(splits.labels)), vy[chosen]
        )
        parts = {"val:unseen": (val_x[unseen], vy[unseen]), "val": (val_x, vy)}
        parts |= {part: (x[text], y) for part, (x, y) in tests.items()}
        out: dict[str, dict[str, Any]] = {}
        for part, (x, y) in parts.items():
            if not len(y):
                continue
            logits = full_logits(fit, x, len(splits.labels))
            m = classification_metrics(y.tolist(), logits.argmax(1).tolist(), splits.labels)
            m.update(calibration_report(np.where(np.isinf(logits), -1e9, logits), y, temperature))
            m["C"] = fit.C
            out[part] = m
        results[name] = (out, shared + time.perf_counter() - began)
    return results


def compare(
    config: RunConfig,
    seeds: int = 3,
    variants: tuple[Variant, ...] = VARIANTS,
    faithfulness_texts: int = 200,
    progress: bool = True,
    with_default: bool = False,
    references: tuple[str, ...] = tuple(REFERENCES),
) -> dict[str, Any]:
    """Train every variant (``seeds`` seeds for the seeded ones) and the reference and default
    runs when asked, under ``config.output/compare``; the report `print_report` prints: every
    run, the summary over seeds, and the first fused run's explanation faithfulness."""
    base = Path(config.output) / "compare"
    workspace = Workspace.open(config, base)
    compiled = workspace.graph.compiled
    if compiled is None and any(v.graph == "shuffled" for v in variants):
        raise ConfigError(
            "the shuffled-KG control rewires the whole graph, which needs it compiled in memory; "
            "compare with kg.files (a triple store is read, never rewired)"
        )
    first = config.train.seed
    plans = _Plans(config, workspace)
    runs: list[dict[str, Any]] = []
    fitted = {
        seed: evaluate_references(plans.for_seed(seed), workspace, references)
        for seed in (range(first, first + seeds) if references else ())
    }
    for name in references:  # rows by reference, then seed
        for seed, by_name in fitted.items():
            metrics, seconds = by_name[name]
            runs.append(record(name, seed, None, metrics, seconds))
    first_fused = _train_variants(config, variants, seeds, plans, workspace, base, progress, runs)
    if with_default:
        _train_defaults(config, seeds, base, progress, runs)
    report: dict[str, Any] = {
        "runs": runs,
        "summary": summarize(runs),
        "graph_encoder": config.model.graph_encoder,
    }
    tests = plans.for_seed(first).splits.tests
    if first_fused is not None and faithfulness_texts > 0 and tests:
        report["faithfulness"] = _faithfulness(first_fused, tests, faithfulness_texts, first)
    return report


@dataclass
class _Plans:
    """Each seed's `plan_run`, made once: the reference and every variant of a seed share it."""

    config: RunConfig
    workspace: Workspace
    plans: dict[int, RunPlan] = field(default_factory=dict)

    def for_seed(self, seed: int) -> RunPlan:
        if seed not in self.plans:
            seeded = with_overrides(self.config, train={"seed": seed})
            self.plans[seed] = plan_run(seeded, self.workspace)
        return self.plans[seed]


def _train_variants(
    config: RunConfig,
    variants: tuple[Variant, ...],
    seeds: int,
    plans: _Plans,
    workspace: Workspace,
    base: Path,
    progress: bool,
    runs: list[dict[str, Any]],
) -> TrainResult | None:
    """Train (or reuse) every variant over its seeds, appending a record to ``runs``; returns
    the first fused run. The shuffled KG is rewired once, with the first seed."""
    first = config.train.seed
    compiled = workspace.graph.compiled
    first_fused: TrainResult | None = None
    shuffled: RunPlan | None = None
    for variant in variants:
        for seed in range(first, first + (seeds if variant.seeded else 1)):
            plan = plans.for_seed(seed)
            named = _variant_config(config, variant, seed, plan)
            if named is None:
                continue
            name, cfg = named
            cfg = replace(cfg, output=str(base / f"{name}-s{seed}"))
            if variant.graph == "shuffled":
                assert compiled is not None  # `compare` checked it
                shuffled = shuffled or replace(
                    plan, resources=plan.resources.with_graph(rewire(compiled, seed=first))
                )
                plan = shuffled
            console.print(f"[bold]{name}[/] seed {seed} ...")
            started = time.perf_counter()
            result = train_or_reuse(
                cfg, progress, workspace=workspace, plan=plan, use_kg=variant.graph != "none"
            )
            if name == "fused" and first_fused is None:
                first_fused = result
            runs.append(record(name, seed, result, result.metrics, time.perf_counter() - started))
    return first_fused


def _variant_config(
    config: RunConfig, variant: Variant, seed: int, plan: RunPlan
) -> tuple[str, RunConfig] | None:
    """The variant's row name and config for ``seed``; None for a variant this KG cannot run
    (the paths encoder and the counts need class nodes; the paths encoder a compiled KG)."""
    name, train = variant.name, dict[str, Any](seed=seed)
    settings: dict[str, Any] = {"mode": variant.mode}
    if variant.toggle:
        resolved = getattr(plan.config.train, variant.toggle)  # what auto chose, if auto
        name, train[variant.toggle] = ablation(config, variant.toggle, resolved)
    if (variant.encoder or variant.toggle_counts) and not plan.resources.label_nodes:
        return None
    if variant.encoder:
        encoder = encoder_ablation(config) if variant.encoder == "other" else "none"
        if encoder == "paths" and plan.resources.graph.compiled is None:
            return None
        settings["graph_encoder"] = encoder
        if variant.encoder == "other":
            name = f"{variant.mode}-{encoder}"
        else:
            settings["counts"] = True
    if variant.toggle_counts:
        settings["counts"] = not config.model.counts
        name = "fused-no-counts" if config.model.counts else "fused-counts"
    return name, with_overrides(config, model=settings, train=train)


def _train_defaults(
    config: RunConfig, seeds: int, base: Path, progress: bool, runs: list[dict[str, Any]]
) -> None:
    """``--with-default``: fused with the config's KG, data and label map only, every other
    setting kgfuse's own, over every seed (records appended to ``runs``)."""
    default = default_config(config)
    default_space = Workspace.open(default, base)
    first = config.train.seed
    for seed in range(first, first + seeds):
        cfg = replace(
            with_overrides(default, train={"seed": seed}), output=str(base / f"default-s{seed}")
        )
        console.print(f"[bold]default[/] seed {seed} ...")
        started = time.perf_counter()
        result = train_or_reuse(cfg, progress, workspace=default_space)
        runs.append(record("default", seed, result, result.metrics, time.perf_counter() - started))


def _faithfulness(
    fused: TrainResult, tests: dict[str, list[Example]], limit: int, seed: int
) -> dict[str, Any]:
    """The explanation faithfulness of the ``fused`` run's bundle on the last test set (e.g.
    unseen), on at most ``limit`` texts (fusion/explain.py)."""
    from fusion.bundle import load_bundle
    from fusion.explain import faithfulness

    model, res, meta = load_bundle(fused.bundle)
    name, examples = next(reversed(tests.items()))
    index = {label: i for i, label in enumerate(res.labels)}
    prepared = res.prepare([e.text for e in examples], [index[e.label] for e in examples])
    return {
        "test": name,
        **faithfulness(
            model,
            res,
            prepared,
            limit=limit,
            seed=seed,
            temperature=float(meta.get("temperature", 1.0)),
        ),
    }
