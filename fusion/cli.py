"""The model commands of `kgfuse`: split, train, check, evaluate, predict, explain, compare,
export, tune and bundle verify."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from kg.cli import KG_OPTION
from kg.files import check_file_writable, check_folder_writable, write_json, write_text
from nlp.cli import LABEL_COLUMN_OPTION, TEXT_COLUMN_OPTION

if TYPE_CHECKING:
    from fusion.predict_file import TextFailure
    from fusion.prediction import Prediction

console = Console()

KEYS_HINT = "`kgfuse config keys` lists every key with its type, default and meaning."


def _share(flag: str, default: float, help: str) -> Any:
    """An option for a share of the texts, between 0 and 0.9."""
    return typer.Option(default, flag, min=0.0, max=0.9, help=help)


def split_command(
    data: Path = typer.Argument(..., help="Labelled texts: CSV, TSV or JSONL."),
    kg_path: Path = KG_OPTION,
    output: Path = typer.Option(
        ...,
        "-o",
        "--output",
        help="Folder for train.csv, val.csv, test.csv, held_out.tsv, split.json.",
    ),
    fraction: float = typer.Option(  # check_fraction: 0 and 1 excluded, which typer cannot say
        0.25, "--fraction", help="Share of the linked entities to hold out, between 0 and 1."
    ),
    seed: int = typer.Option(0, "--seed"),
    val_fraction: float = _share(
        "--val-fraction",
        0.15,
        "Share of the other texts held out by entity for validation (val:unseen).",
    ),
    val_seen_fraction: float = _share(
        "--val-seen-fraction",
        0.05,
        "Share of the other texts set aside at random for validation (val:seen).",
    ),
    types: list[str] = typer.Option(
        [], "--type", help="Hold out only entities of this rdf:type IRI (repeat)."
    ),
    seen_fraction: float = _share(
        "--seen-fraction", 0.0, "Also set aside this share of the other texts as test_seen.csv."
    ),
    text_column: str = TEXT_COLUMN_OPTION,
    label_column: str = LABEL_COLUMN_OPTION,
) -> None:
    """Hold out a seeded fraction of linked entities: test texts mention them, train never does."""
    import kg
    from fusion.data import check_fraction, read_examples
    from fusion.split import held_out_entity_split, labels_only_in_test, write_split
    from nlp.linker import from_kg
    from nlp.texts import DataError

    check_fraction(fraction, "--fraction")  # before the KG loads and the texts link
    check_folder_writable(output)
    graph = kg.open_or_load(kg_path)
    examples = read_examples(data, text_column, label_column)
    nlp = from_kg(graph)
    mentions = [
        [e.kb_id_ for e in doc._.kg_entities]
        for doc in nlp.pipe([e.text for e in examples], batch_size=256)
    ]
    candidates = None
    if types:
        wanted = {_type_node(graph, t) for t in types}
        candidates = {
            graph.iri(e) for e in range(graph.num_entities) if wanted & set(graph.types_of(e))
        }
    split = held_out_entity_split(
        examples,
        mentions,
        fraction,
        seed,
        val_fraction=val_fraction,
        candidates=candidates,
        seen_fraction=seen_fraction,
        val_seen_fraction=val_seen_fraction,
    )
    if not split.held_out:
        linked = len({iri for m in mentions for iri in m})
        raise DataError(
            f"held out no entity: {len(examples)} text(s) of {data} link {linked} entit(ies), too "
            "few to hold out this --fraction without leaving a label nearly bare; give more "
            "texts or raise --fraction (nothing was written)"
        )
    settings = {
        "data": str(data),
        "kg": str(kg_path),
        "fraction": fraction,
        "seed": seed,
        "val_fraction": val_fraction,
        "val_seen_fraction": val_seen_fraction,
        "types": types,
    }
    write_split(split, graph, output, text_column, label_column, settings)
    table = Table("split", "texts", title=f"held out {len(split.held_out)} entities -> {output}")
    val_seen = len(split.val) - split.val_unseen
    rows: list[tuple[str, int | str]] = [
        ("train", len(split.train)),
        ("val (unseen + seen)", f"{len(split.val):,} ({split.val_unseen:,} + {val_seen:,})"),
        ("test", len(split.test)),
        ("test_seen", len(split.test_seen)),
    ]
    for name, n in rows:
        if n or name != "test_seen":
            table.add_row(name, f"{n:,}" if isinstance(n, int) else n)
    console.print(table)
    missing = labels_only_in_test(split)
    if missing:
        console.print(
            f"[yellow]warning:[/] labels {missing} occur only in test; try another --seed"
        )


def _type_node(graph: Any, name: str) -> int:
    """The entity id of a --type IRI; an error names the flag."""
    from kg.errors import AmbiguousEntityError, EntityNotFoundError
    from nlp.texts import DataError

    try:
        return int(graph.resolve(name))
    except (EntityNotFoundError, AmbiguousEntityError) as e:
        raise DataError(f"--type {name!r}: {e}; give the IRI of an rdf:type class of the KG") from e


def train_command(
    config: Path = typer.Argument(..., help="YAML config (see configs/)."),
    overrides: list[str] = typer.Argument(
        None, help=f"key=value overrides, e.g. train.epochs=3 model.mode=text. {KEYS_HINT}"
    ),
) -> None:
    """Train a model from a config; writes OUTPUT/bundle and prints its metrics."""
    from fusion.train import main

    try:
        result = main(config, overrides or [])
    except KeyboardInterrupt:
        _say_interrupted(config, overrides or [])
        raise typer.Exit(130) from None
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return
    for setting, choice in result.choices.items():
        console.print(f"[bold]{setting}[/]: {choice['value']}  ({choice['reason']})")
    table = Table(
        "split",
        "accuracy",
        "macro-F1",
        "ECE",
        "texts",
        "linked",
        title=f"bundle -> {result.bundle}",
    )
    for name, m in result.metrics.items():
        table.add_row(
            name,
            f"{m['accuracy']:.3f}",
            f"{m['macro_f1']:.3f}",
            f"{m['ece']:.3f}",
            str(m["n"]),
            f"{m['linked_share']:.0%}",
        )
    console.print(table)
    console.print(
        f"{result.epochs_run} epoch(s), best {result.best_epoch} (on validation), "
        f"{result.seconds_per_epoch:.1f} s/epoch, temperature {result.temperature:.2f}"
    )


def check_command(
    config: Path = typer.Argument(..., help="YAML config (see configs/)."),
    overrides: list[str] = typer.Argument(None, help=f"key=value overrides. {KEYS_HINT}"),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON."),
) -> None:
    """What training would see, before it trains: linking, label paths, automatic choices."""
    from fusion.check import check
    from fusion.config import load_config

    run_config = load_config(config, overrides or [])
    if json_out is not None:
        check_file_writable(json_out)
    report = check(run_config)
    sizes = ", ".join(f"{v:,} {k}" for k, v in report.kg.items())
    console.print(
        f"KG: {sizes}; {report.classes} classes, {report.classes_in_kg} with a node in the KG "
        "(kg.label_map)"
    )
    for setting, choice in report.choices.items():
        console.print(f"[bold]{setting}[/]: {choice['value']}  ({choice['reason']})")
    hops = f"{report.hops} hop(s)" if report.hops else "the chosen hops"
    table = Table(
        "split",
        "texts",
        "linked",
        "entities / text",
        f"a label path to its class ({hops})",
        "paths' top class is its own",
    )
    for row in report.splits:
        paths = (
            ("-", "-")
            if row.reachable is None
            else (
                f"{row.reachable / row.texts:.0%}",
                f"{(row.paths_pick_label or 0) / row.texts:.0%}",
            )
        )
        table.add_row(
            row.name,
            str(row.texts),
            f"{row.linked / row.texts:.0%}",
            f"{row.entities / row.texts:.1f}",
            *paths,
        )
    console.print(table)
    if not report.reads_kg:
        console.print(
            "model.mode is text: this model reads no KG; the figures say what a model with a "
            "KG branch could use"
        )
    console.print(_verdict(report.reference, report.missing))
    console.print(f"took {report.seconds:.1f} s; nothing was written")
    if json_out is not None:
        write_json(json_out, report.to_dict())


def _verdict(reference: dict[str, Any], missing: str) -> str:
    """Whether the KG's label paths lift the reference above the text alone on validation, at
    the run's hops (fusion/check.py), or why there is no reference."""
    if not reference:
        return (
            f"no reference was fitted: {missing}. "
            "`kgfuse compare CONFIG --rows text,fused` trains and compares both"
        )
    accuracy, hops = reference["accuracy_by_hops"], reference["hops"]
    figures = (
        f"on {reference['texts']} {reference['texts_kind']} texts the reference scores "
        f"{accuracy[str(hops)]:.3f} with {hops}-hop label paths and {accuracy['0']:.3f} on the "
        "text alone"
    )
    if reference["kg_helps"]:
        return f"[bold green]the KG's label paths help the reference[/]: {figures}"
    return (
        f"[bold yellow]the KG's label paths add nothing to the reference[/] (beyond one standard "
        f"error): {figures}. A fused model may still gain from the KG (`kgfuse compare CONFIG "
        "--rows text,fused` measures it); check the linked share and label paths above, that "
        "the label map names the classes' KG nodes, and whether the paths that decide are "
        "longer than the hops tried"
    )


def evaluate_command(
    bundle: Path = typer.Argument(..., help="A bundle folder (OUTPUT/bundle of a training run)."),
    data: Path = typer.Argument(..., help="Labelled texts: CSV, TSV or JSONL."),
    text_column: str = TEXT_COLUMN_OPTION,
    label_column: str = LABEL_COLUMN_OPTION,
    json_out: Path | None = typer.Option(None, "--json", help="Also write the metrics as JSON."),
) -> None:
    """Accuracy, macro-F1, a per-class report and a confusion matrix on a labelled file."""
    from fusion.bundle import load_bundle
    from fusion.evaluate import evaluate

    if json_out is not None:
        check_file_writable(json_out)  # before the model loads and every text is predicted
    model, resources, _ = load_bundle(bundle)
    metrics = evaluate(model, resources, resources.prepare_file(data, text_column, label_column))
    console.print(
        f"accuracy {metrics['accuracy']:.3f}   macro-F1 {metrics['macro_f1']:.3f}   n={metrics['n']}"
    )
    report = Table("class", "precision", "recall", "F1", "support")
    for label, m in metrics["per_class"].items():
        report.add_row(
            label,
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
            str(m["support"]),
        )
    console.print(report)
    confusion = Table("true \\ predicted", *resources.labels, title="confusion matrix")
    for label, row in zip(resources.labels, metrics["confusion"], strict=True):
        confusion.add_row(label, *map(str, row))
    console.print(confusion)
    if json_out is not None:
        write_json(json_out, metrics)


def _print_prediction(p: Prediction) -> None:
    top = sorted(p.probabilities.items(), key=lambda kv: -kv[1])[:3]
    console.print(f"[bold]{p.label}[/]  " + "  ".join(f"{k} {v:.3f}" for k, v in top))
    if p.entities:
        console.print("  linked: " + ", ".join(f"{e.text!r} -> {e.label}" for e in p.entities))
    for n, path in enumerate(p.paths or [], 1):
        console.print(f"  path {n} (score {path.score:.3f}): {path.text}")


def _show(predictions: Iterable[Prediction | TextFailure], json_lines: bool) -> None:
    """Each prediction as a JSON line on stdout (``--json``), or in words; a text that could
    not be classified, as its error."""
    from fusion.predict_file import TextFailure

    for p in predictions:
        if json_lines:
            sys.stdout.write(p.json_line())
        elif isinstance(p, TextFailure):
            _print_whole(f"[red]error:[/] {p.message}")
        else:
            _print_prediction(p)


def predict_command(
    bundle: Path = typer.Argument(..., help="A bundle folder."),
    texts: list[str] = typer.Argument(None, help="Texts to classify (or --input)."),
    input: Path | None = typer.Option(
        None, "--input", "-i", help="CSV, TSV, JSONL or TXT file of texts, read as a stream."
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="JSONL file for the predictions. With --input, written as it goes (OUT.part, "
        "renamed to OUT when complete); rerunning the same command resumes an interrupted run.",
    ),
    json_lines: bool = typer.Option(
        False,
        "--json",
        help="Print the predictions on stdout as JSON Lines, one object per text, as -o writes "
        "them (for scripts).",
    ),
    text_column: str = TEXT_COLUMN_OPTION,
    paths: bool = typer.Option(False, "--paths", help="Also give supporting paths."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace OUT (and an interrupted run's OUT.part) from scratch."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Classify texts with a bundle; a large --input file streams to -o and resumes."""
    from fusion.bundle import read_meta
    from fusion.predict import Predictor
    from fusion.predict_file import (
        answers,
        iter_texts,
        predict_file,
        predictions_lock,
        run_record,
        scan,
        start_or_resume,
    )
    from nlp.linker_settings import text_limit
    from nlp.texts import DataError, check_texts

    if bool(texts) == (input is not None):
        raise DataError("give texts as arguments or --input FILE (not both)")
    if json_lines and output is not None:
        raise DataError("--json prints the predictions and -o writes them to a file; pass one")
    if input is None:
        check_texts(texts)
        if output is not None:
            check_file_writable(output)  # before the model loads
        found = Predictor.from_dir(bundle).predict(texts, explain_paths=paths)
        if output is None:
            _show(found, json_lines)
        else:
            write_text(output, "".join(p.json_line() for p in found))
            console.print(f"{len(found)} prediction(s) -> {output}")
        return
    meta = read_meta(bundle)  # a missing bundle is named before the input is read
    limit = text_limit(meta.get("linker") or {})
    total, digest, failing = scan(input, text_column, limit)  # read whole before the model loads
    if output is None:
        predictor = Predictor.from_dir(bundle)
        _show(answers(predictor, iter_texts(input, text_column), paths), json_lines)
        _say_failing(failing, total, "rerun")
        return
    run = run_record(bundle, input, text_column, paths, digest, total)
    with predictions_lock(output):  # one writer: two would append to the same OUT.part
        done = start_or_resume(output, run, overwrite)
        if done is None:
            console.print(f"{output} already holds the {total} answers of this input and bundle")
            _say_failing(failing, total, "rerun with --overwrite")
            return
        if done:
            console.print(f"resuming {output}: {done} of {total} predictions kept")
        predictor = Predictor.from_dir(bundle)
        try:
            predicted = predict_file(predictor, input, output, run, done, progress)
        except KeyboardInterrupt:
            console.print(f"interrupted: {output}.part keeps what was written; rerun to resume")
            raise typer.Exit(130) from None
    console.print(f"{predicted} answer(s) -> {output} ({total} in all)")
    _say_failing(failing, total, "rerun with --overwrite")


def _say_failing(failing: list[int], total: int, rerun: str) -> None:
    """After a file's answers: name the texts that got an error line instead of a prediction,
    and exit 1, so a script sees them; the others were all answered."""
    if not failing:
        return
    from nlp.texts import DataError

    shown = ", ".join(map(str, failing[:5])) + (", ..." if len(failing) > 5 else "")
    raise DataError(
        f"{len(failing)} of {total} texts could not be classified (text {shown}: empty, not "
        "valid Unicode or too long); each has an error line in its place, with the reason, and every other "
        f"text was answered; fix them in the input and {rerun} to predict them"
    )


def explain_command(
    bundle: Path = typer.Argument(..., help="A bundle folder."),
    text: str = typer.Argument(..., help="The text to explain."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, max=20, help="How many supporting paths."),
) -> None:
    """Label, probabilities, linked entities and the top-k supporting paths (each hop a KG triple)."""
    from fusion.predict import Predictor

    (found,) = Predictor.from_dir(bundle).predict([text], explain_paths=True, top_k_paths=top_k)
    _print_prediction(found)
    if not found.paths:
        console.print("  no supporting path: nothing linked, or no path to the predicted label")


def compare_command(
    config: Path = typer.Argument(..., help="YAML config (see configs/)."),
    overrides: list[str] = typer.Argument(None, help=f"key=value overrides. {KEYS_HINT}"),
    seeds: int = typer.Option(3, "--seeds", min=1, max=10, help="Seeds for text and fused."),
    faithfulness_texts: int = typer.Option(
        200,
        "--faithfulness-texts",
        min=0,
        help="Texts for the explanation faithfulness measure (0: skip).",
    ),
    with_default: bool = typer.Option(
        False, "--with-default", help="Also train kgfuse's defaults on the same KG and data."
    ),
    rows: str = typer.Option(
        "",
        "--rows",
        help="Comma-separated rows to train, e.g. reference,text,fused (default: all; an "
        "unknown name is refused with the list).",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON."),
) -> None:
    """Train text, fused, graph, counter and the two controls, fit the reference; one table."""
    from fusion.compare import compare, pick_variants, print_report
    from fusion.compare import write_json as write_report
    from fusion.config import load_config

    variants, references = pick_variants(rows)
    if json_out is not None:
        check_file_writable(json_out)  # not after an hour of training
    report = compare(
        load_config(config, overrides or []),
        seeds=seeds,
        variants=variants,
        faithfulness_texts=faithfulness_texts,
        with_default=with_default,
        references=references,
    )
    print_report(report)
    if json_out is not None:
        write_report(report, json_out)


def export_command(
    bundle: Path = typer.Argument(..., help="A trained bundle."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the exported bundle."),
    int8: bool = typer.Option(False, "--int8", help="Quantize Linear layers to int8 at load time."),
    onnx: bool = typer.Option(
        False,
        "--onnx",
        help="Also write the encoder as ONNX and run it on ONNX Runtime at load time "
        "(pip install onnxruntime onnx).",
    ),
    prune: bool = typer.Option(
        False,
        "--prune",
        help="Remove the least important attention heads and FFN rows of the merged encoder "
        "(smaller and faster; combines with --int8 or --onnx).",
    ),
    prune_heads: float | None = typer.Option(
        None,
        "--prune-heads",
        help="With --prune: share of each layer's attention heads to remove, 0 <= f < 1 "
        "(default 0.125, chosen on the demo's validation texts).",
    ),
    prune_ffn: float | None = typer.Option(
        None,
        "--prune-ffn",
        help="With --prune: share of each layer's FFN rows to remove, 0 <= f < 1 "
        "(default 0.25, chosen on the demo's validation texts).",
    ),
    prune_data: Path | None = typer.Option(
        None,
        "--prune-data",
        help="With --prune: CSV, TSV, JSONL or TXT of texts (a 'text' column; e.g. the "
        "validation file) to score heads and rows by their activations instead of their weights.",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Labelled file: report accuracy change and speed-up."
    ),
) -> None:
    """Merge LoRA into the encoder (optionally prune it, mark int8, or run it on ONNX)."""
    from fusion.export import export_bundle, measure
    from fusion.prune import DEFAULT_FFN, DEFAULT_HEADS, PruneError

    if not prune and (prune_heads is not None or prune_ffn is not None or prune_data):
        raise PruneError(
            "--prune-heads, --prune-ffn and --prune-data take effect with --prune: add --prune"
        )
    amounts = (
        (
            DEFAULT_HEADS if prune_heads is None else prune_heads,
            DEFAULT_FFN if prune_ffn is None else prune_ffn,
        )
        if prune
        else None
    )
    texts = None
    if prune_data is not None:
        from fusion.predict_file import iter_texts

        texts = list(iter_texts(prune_data))
    if data is not None:  # a bad --data file is refused before the export is written
        _check_labelled(bundle, data)
    export_bundle(bundle, output, int8=int8, onnx=onnx, prune=amounts, prune_texts=texts)
    kinds = [
        f"pruned: {amounts[0]:g} of heads, {amounts[1]:g} of FFN rows" if amounts else "",
        "int8" if int8 else "",
        "ONNX encoder" if onnx else "",
    ]
    kind = ", ".join(k for k in kinds if k)
    console.print(f"exported {bundle} -> {output}" + (f" ({kind})" if kind else ""))
    if data is not None:
        before = measure(bundle, data, allow_unchecked=True)
        after = measure(output, data)
        table = Table("bundle", "accuracy", "macro-F1", "texts/s")
        for name, m in (("source", before), ("exported", after)):
            table.add_row(
                name, f"{m['accuracy']:.3f}", f"{m['macro_f1']:.3f}", f"{m['texts_per_s']:.1f}"
            )
        console.print(table)
        console.print(
            f"accuracy change {after['accuracy'] - before['accuracy']:+.3f}, "
            f"speed-up {after['texts_per_s'] / before['texts_per_s']:.2f}x"
        )


def _say_interrupted(config: Path, overrides: list[str]) -> None:
    """After Ctrl-C in `kgfuse train`: what is left in the output folder and how to go on."""
    from fusion.checkpoint import CheckpointError, checkpoint_state
    from fusion.config import load_config

    output = Path(load_config(config, overrides).output)
    try:
        state = checkpoint_state(output / "checkpoint")
    except CheckpointError:
        state = None
    if state and state.get("epoch"):
        console.print(
            f"interrupted: {output / 'checkpoint'} keeps epoch {state['epoch']}; rerun the same "
            f"command to resume from there (or delete {output} to start afresh); no bundle "
            "was written",
            highlight=False,
        )
    else:
        console.print(
            "interrupted before the first epoch ended: no checkpoint and no bundle were written; "
            "rerun the command to start again",
            highlight=False,
        )


def _check_labelled(bundle: Path, data: Path) -> None:
    """Refuse a labelled file that `measure` could not read: unreadable, a missing column or an
    empty field, a text that cannot be classified, or a label ``bundle`` does not know."""
    from fusion.bundle import read_meta
    from fusion.data import read_examples, refuse_unknown_labels
    from nlp.texts import check_texts

    examples = read_examples(data)
    check_texts([e.text for e in examples])
    refuse_unknown_labels(data, examples, read_meta(bundle).get("labels", []))


def tune_command(
    config: Path = typer.Argument(..., help="YAML config (see configs/)."),
    overrides: list[str] = typer.Argument(None, help=f"key=value overrides. {KEYS_HINT}"),
    trials: int = typer.Option(20, "--trials", min=1, max=1000, help="Finished trials in all."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0.1, help="Stop starting trials after this many minutes."
    ),
    seeds: int = typer.Option(
        1,
        "--seeds",
        min=1,
        max=10,
        help="Seeds each trial trains (train.seed, +1, ...); its score is their mean "
        "validation score. Without a val file each seed holds out other entities.",
    ),
) -> None:
    """Choose settings on validation with Optuna (TPE, pruning, resumable); writes best.yaml."""
    from fusion.config import load_config
    from fusion.tune import tune

    resolved = load_config(config, overrides or [])
    try:
        summary = tune(resolved, trials, timeout, seeds=seeds)
    except KeyboardInterrupt:
        study = Path(resolved.output) / "tune"
        _print_whole(
            f"interrupted: {study} keeps the finished trials; rerun the same command to go on "
            "from there (the interrupted trial runs again, from its last checkpoint)"
        )
        raise typer.Exit(130) from None
    table = Table("setting", "value", title=f"best of {summary['trials']} trials")
    for key, value in sorted(summary["params"].items()):
        table.add_row(key, setting_text(value))
    console.print(table)
    console.print(
        f"trial {summary['best_trial']}: {summary['score']:.3f} on validation "
        f"({summary['complete']} finished, {summary['pruned']} pruned)"
    )
    console.print(f"train it: [bold]kgfuse train {summary['config']}[/]")


def setting_text(value: object) -> str:
    """A tuned setting as best.yaml writes it: None is ``auto`` (kgfuse chooses)."""
    if value is None:
        return "auto"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_whole(line: str) -> None:
    """Print ``line`` uncoloured and never wrapped, so the paths in it can be copied."""
    console.print(line, highlight=False, soft_wrap=True)


def _since(started: float) -> str:
    """The seconds since ``started`` (a `time.perf_counter` reading), as ``1.23 s``."""
    return f"{time.perf_counter() - started:.2f} s"


def bundle_verify_command(
    bundle: Path = typer.Argument(..., help="A bundle folder."),
) -> None:
    """Check every file of a bundle against the SHA-256s in its bundle.json (loads no model)."""
    from fusion.bundle import read_meta, verify_bundle

    started = time.perf_counter()
    manifest = verify_bundle(bundle, read_meta(bundle))
    size = sum((bundle / name).stat().st_size for name in manifest)
    _print_whole(
        f"OK {bundle}: {len(manifest)} files ({size / 1e6:,.1f} MB) match bundle.json "
        f"({_since(started)})"
    )


# ----- encrypted bundles (fusion/bundle_crypto.py) -----

KEY_FILE_HELP = "File with the base64 key (`kgfuse bundle keygen`); else KGFUSE_BUNDLE_KEY."


def _key_file_option() -> Any:
    return typer.Option(None, "--key-file", help=KEY_FILE_HELP)


def _force_option() -> Any:
    return typer.Option(False, "--force", help="Replace OUTPUT if it exists.")


def bundle_keygen_command(
    output: Path = typer.Option(..., "-o", "--output", help="Key file to write (mode 0600)."),
    force: bool = _force_option(),
) -> None:
    """Write a new random AES-256 key (base64, readable by its owner only)."""
    from fusion.bundle_crypto import write_key

    ident = write_key(output, force)
    console.print(f"wrote key {ident.hex()} to {output} (0600); keep it apart from the bundle")


def bundle_encrypt_command(
    bundle: Path = typer.Argument(..., help="A bundle folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Encrypted bundle file (.kgfe)."),
    key_file: Path | None = _key_file_option(),
    force: bool = _force_option(),
) -> None:
    """Encrypt a bundle folder into one file (AES-256-GCM, checked chunk by chunk)."""
    from fusion.bundle_crypto import encrypt_bundle, key_id, read_key

    key = read_key(key_file)
    started = time.perf_counter()
    size = encrypt_bundle(bundle, output, key, force)
    _print_whole(
        f"encrypted {bundle} -> {output} ({size / 1e6:,.1f} MB, key {key_id(key).hex()}, "
        f"{_since(started)})"
    )


def bundle_decrypt_command(
    encrypted: Path = typer.Argument(..., help="An encrypted bundle file (.kgfe)."),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle folder to write."),
    key_file: Path | None = _key_file_option(),
    force: bool = _force_option(),
) -> None:
    """Decrypt a .kgfe file back into a bundle folder (checked against its manifest)."""
    from fusion.bundle_crypto import decrypt_bundle, read_key

    key = read_key(key_file)
    started = time.perf_counter()
    decrypt_bundle(encrypted, output, key, force)
    _print_whole(f"decrypted {encrypted} -> {output} ({_since(started)})")
