"""The `kgfuse` command: one entry point for every layer's commands.

Every `KGFuseError` (bad input, missing file, ...) and every file-system error (no permission,
a full disk) ends as one readable line on stderr and exit code 1; usage errors exit 2 (typer's
convention). No traceback reaches the user for bad input.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

# Before torch loads: OpenMP threads that spin while they wait made model calls 10-15x slower
# on a 2-core machine that other processes also use (64 demo texts: 19.6 s against 1.5 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer
from rich.console import Console
from rich.markup import escape

from api.serve import serve_command
from fusion.anonymize_data import anonymize_command
from fusion.cli import (
    bundle_decrypt_command,
    bundle_encrypt_command,
    bundle_keygen_command,
    bundle_verify_command,
    check_command,
    compare_command,
    evaluate_command,
    explain_command,
    export_command,
    predict_command,
    split_command,
    train_command,
    tune_command,
)
from fusion.config_cli import app as config_app
from kg.cli import app as kg_app
from kg.errors import KGFuseError
from kg.stop_signals import raising_on_stop_signals
from nlp.cli import learn_aliases_command, link_command

app = typer.Typer(
    name="kgfuse",
    help="Knowledge-graph-augmented text classification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def version_line() -> str:
    """``kgfuse 0.1.0 (python 3.11.7, torch 2.13.0+cpu, ...)``: what a bug report needs."""
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    libraries = ("torch", "transformers", "peft", "torch-geometric", "spacy", "rdflib", "fastapi")
    parts = [f"python {sys.version.split()[0]}", *(f"{p} {of(p)}" for p in libraries)]
    return f"kgfuse {of('kgfuse')} ({', '.join(parts)})"


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Show kgfuse's version and the versions of the libraries it runs on, and exit.",
    ),
) -> None:
    """Knowledge-graph-augmented text classification."""


def _add_commands(
    group: typer.Typer, *rows: tuple[Callable[..., None], ...], prefix: str = ""
) -> None:
    """Each function ``PREFIXNAME_command`` of ``rows`` becomes the command NAME of ``group``,
    in the order given (the order of ``--help``)."""
    for command in itertools.chain(*rows):
        group.command(command.__name__.removeprefix(prefix).removesuffix("_command"))(command)


app.add_typer(kg_app, name="kg")
aliases_app = typer.Typer(
    help="Alias tables: names of KG entities the KG itself lacks.", no_args_is_help=True
)
aliases_app.command("learn")(learn_aliases_command)
app.add_typer(aliases_app, name="aliases")
bundle_app = typer.Typer(
    help="Model bundles: check them without loading, encrypt and decrypt them.",
    no_args_is_help=True,
)
_add_commands(
    bundle_app,
    (bundle_verify_command, bundle_keygen_command, bundle_encrypt_command, bundle_decrypt_command),
    prefix="bundle_",
)
app.add_typer(bundle_app, name="bundle")
app.add_typer(config_app, name="config")
_add_commands(
    app,
    (link_command, anonymize_command, split_command, train_command, check_command),
    (evaluate_command, predict_command, explain_command, compare_command, tune_command),
    (export_command, serve_command),
)


@app.command("demo")
def demo_command(
    overrides: list[str] = typer.Argument(
        None, help="Config overrides for configs/demo.yaml, e.g. train.epochs=2."
    ),
    output: Path = typer.Option(
        Path("runs/demo"), "--output", "-o", help="Where the demo's runs and bundles go."
    ),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the fused model after."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    threads: int = typer.Option(0, "--threads", help="Torch threads (0: torch's default)."),
) -> None:
    """The embedded demo: train fused and text-only models on data/demo, compare, serve."""
    from api.demo import run_demo

    run_demo(output, serve, host, port, threads, overrides or [])


_python_warning = warnings.formatwarning
PACKAGES = ("kg", "nlp", "fusion", "api")
REPO = Path(__file__).resolve().parents[1]


def warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """kgfuse's own warnings (a category defined in its packages, or one raised from their
    code) as one line, like its errors: what to check, not where in kgfuse's source it was
    noticed. Other libraries' warnings keep Python's form, which names their source."""
    ours = category.__module__.split(".")[0] in PACKAGES
    if not ours:
        path = Path(filename).resolve()
        ours = any(path.is_relative_to(REPO / package) for package in PACKAGES)
    if ours:
        return f"warning: {message}\n"
    return _python_warning(message, category, filename, lineno, line)


def main() -> None:
    """Run the `kgfuse` command. A stopping signal (SIGTERM, SIGHUP, ...) is a Ctrl-C here:
    every command's cleanup runs (temporary folders go, a `.part` file keeps what was
    written, the resume hint prints), and then the process ends by that signal, as its sender
    expects (a service manager reads it as a clean stop)."""
    warnings.formatwarning = warning_line
    received: list[int] = []
    try:
        with raising_on_stop_signals(lambda signum: KeyboardInterrupt()) as received:
            _run_app()
    finally:
        if received:
            sys.stdout.flush()
            sys.stderr.flush()
            signal.raise_signal(received[0])  # its handler is the default one again


def _run_app() -> None:
    try:
        app()
    except KGFuseError as e:
        _fail(str(e))
    except BrokenPipeError:  # `kgfuse ... | head`: the reader left; nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        sys.exit(1)
    except OSError as e:  # the file system refused (permission, full disk, ...): no traceback
        where = f"{e.filename}: " if e.filename else ""
        _fail(f"{where}{e.strerror or e}; check the path, its permissions and the free space")


def _fail(message: str) -> None:
    """One line on stderr and exit code 1."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}", markup=True
    )
    sys.exit(1)


if __name__ == "__main__":
    main()
