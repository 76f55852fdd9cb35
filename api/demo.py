"""`kgfuse demo` / `make demo`: the embedded demo on data/demo, end to end.

1. compiles the demo product KG; 2. trains the fused model and the text-only baseline (a
finished run is reused when neither data nor config changed); 3. prints both on the seen and the
unseen-product test sets; 4. shows three predictions about products no training message names,
with the graph paths behind them; 5. serves the API and the web page.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fusion.compare import train_or_reuse
from fusion.config import RunConfig, load_config
from fusion.prediction import Prediction
from fusion.setup import Workspace, plan_run
from fusion.train import TrainResult, with_overrides
from kg.errors import KGFuseError

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
console = Console()


def demo_config(output: Path, threads: int, overrides: Sequence[str] = ()) -> RunConfig:
    """configs/demo.yaml (plus ``key=value`` overrides) with its data paths anchored at the
    repository, wherever the command runs."""
    if not (REPO / "data" / "demo" / "kg.ttl").is_file():
        raise KGFuseError(f"the demo data is missing: {REPO / 'data/demo/kg.ttl'} not found")
    config = load_config(DEMO_CONFIG, list(overrides))

    def anchored(p: str) -> str:
        return str(REPO / p)

    config = with_overrides(
        config,
        kg={
            "files": [anchored(f) for f in config.kg.files],
            "label_map": anchored(config.kg.label_map),
        },
        data={
            "train": anchored(config.data.train),
            "tests": {name: anchored(p) for name, p in config.data.tests.items()},
        },
        train={"threads": threads},
    )
    return replace(config, output=str(output))


def train_both(config: RunConfig) -> dict[str, TrainResult]:
    """The text baseline and the fused model on the same splits, linking and node features."""
    workspace = Workspace.open(config, Path(config.output))
    plan = plan_run(config, workspace)
    results = {}
    for mode in ("text", "fused"):
        console.rule(f"[bold]2. train the {mode} model")
        cfg = replace(
            with_overrides(config, model={"mode": mode}), output=str(Path(config.output) / mode)
        )
        results[mode] = train_or_reuse(cfg, True, workspace=workspace, plan=plan)
    return results


def comparison_table(results: dict[str, TrainResult]) -> Table:
    splits = [s for s in results["fused"].metrics if s.startswith("test:")]
    table = Table(title="accuracy / macro-F1 on the demo test sets")
    table.add_column("model")
    for s in splits:
        table.add_column(f"{s[5:]} acc", justify="right")
        table.add_column(f"{s[5:]} F1", justify="right")
    table.add_column("s/epoch", justify="right")
    for mode, r in results.items():
        cells = [f"{r.metrics[s][m]:.3f}" for s in splits for m in ("accuracy", "macro_f1")]
        table.add_row(mode, *cells, f"{r.seconds_per_epoch:.1f}")
    gains = [
        f"{results['fused'].metrics[s][m] - results['text'].metrics[s][m]:+.3f}"
        for s in splits
        for m in ("accuracy", "macro_f1")
    ]
    table.add_row("[bold]fused - text", *gains, "")
    return table


def pick_examples(
    fused: list[Prediction], text: list[Prediction], gold: list[str], n: int = 3
) -> list[int]:
    """Texts the fused model gets right (with paths), one per class while it can: those the
    text model gets wrong first."""
    right = [i for i, p in enumerate(fused) if p.label == gold[i] and p.paths]
    ranked = [i for i in right if text[i].label != gold[i]]
    ranked += [i for i in right if i not in ranked]
    picked: list[int] = []
    for i in ranked:  # first pass: distinct classes
        if len(picked) < n and gold[i] not in {gold[j] for j in picked}:
            picked.append(i)
    return picked + [i for i in ranked if i not in picked][: n - len(picked)]


def show_examples(results: dict[str, TrainResult], test_file: Path) -> None:
    from fusion.predict import Predictor
    from nlp.texts import read_records

    rows = read_records(test_file, required=("text", "label"))[:60]
    texts, gold = [r["text"] for r in rows], [r["label"] for r in rows]
    fused = Predictor.from_dir(results["fused"].bundle).predict(texts, explain_paths=True)
    text = Predictor.from_dir(results["text"].bundle).predict(texts)
    for n, i in enumerate(pick_examples(fused, text, gold), 1):
        p = fused[i]
        console.print(f"\n[bold]{n}.[/] [italic]{p.text}[/]")
        console.print(
            f"   fused: [green]{p.label}[/] ({p.probabilities[p.label]:.2f})   "
            f"text only: {text[i].label}   true: {gold[i]}"
        )
        linked = ", ".join(f"{e.text!r} -> {e.label}" for e in p.entities)
        console.print(f"   linked: {linked or 'nothing'}")
        for path in (p.paths or [])[:2]:
            console.print(f"   path: {path.text}", highlight=False, markup=False)


def print_curl_examples(url: str, admin_key: str) -> None:
    console.rule("[bold]5. serve")
    console.print(f"web page: [bold]{url}/[/]   API docs: {url}/docs   metrics: {url}/metrics")
    body = '{"texts": ["my Lantis L2 keeps flickering after the update"], "explain": true}'
    console.print("try:", highlight=False)
    console.print(
        f"  curl -s {url}/v1/predict -H 'content-type: application/json' -d '{body}'",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    console.print(f"  curl -s '{url}/v1/kg/search?q=earbuds'", highlight=False, markup=False)
    console.print(
        f"  curl -s {url}/v1/kg/triples -H 'authorization: Bearer {admin_key}' "
        "-H 'content-type: text/turtle' --data-binary @my-new-products.ttl",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    console.print("stop with Ctrl+C", style="dim")


def serve_bundle(bundle: Path, host: str, port: int, admin_key: str) -> None:
    from api.serve import run_server
    from api.settings import ApiKeys, ServeSettings

    settings = ServeSettings(bundle=bundle, keys=ApiKeys(admin=(admin_key,)))
    run_server(settings, host, port, log_level="warning")


def run_demo(
    output: Path,
    serve: bool = True,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 0,
    overrides: Sequence[str] = (),
) -> dict[str, TrainResult]:
    config = demo_config(output, threads, overrides)
    if serve:  # a port in use is named now, not after the training
        from api.serve import check_port

        check_port(host, port)
    console.rule("[bold]1. the demo product KG")
    import kg

    graph = kg.open_or_load(config.kg.files)
    stats = Table(title=", ".join(Path(f).name for f in config.kg.files), show_header=False)
    for key, value in graph.stats().items():
        stats.add_row(key, str(value))
    console.print(stats)
    results = train_both(config)
    console.rule("[bold]3. text only vs fused")
    console.print(comparison_table(results))
    console.print(
        "unseen: messages about product models that no training message names. The KG joins "
        "each model to its team through its product line.",
        style="dim",
    )
    console.rule("[bold]4. predictions about unseen products, with their paths")
    show_examples(results, Path(config.data.tests["unseen"]))
    if serve:
        admin_key = secrets.token_urlsafe(24)
        print_curl_examples(f"http://{host}:{port}", admin_key)
        serve_bundle(results["fused"].bundle, host, port, admin_key)
    return results
