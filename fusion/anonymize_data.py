"""`kgfuse anonymize DATA.csv -o OUT`: redact the personal data of a data file's texts, keeping the
KG entities a model's linker finds in them.

With ``--bundle`` or ``--config`` the texts are linked first with that model's linker (its KG,
alias table and settings), and names overlapping a linked KG mention are kept (`nlp.anonymize`):
"Parkinson's disease" is a KG entity, not a person. The texts are then linked again after
redaction, and the summary says in how many the linked entities stayed the same.

The output keeps every column and the row order; only the text column changes. It is written
atomically (kg/files.py): an error leaves no half-written file.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from kg.files import write_text
from nlp.anonymize import PLACEHOLDERS, AnonymizeError, Anonymizer, mention_spans
from nlp.cli import TEXT_COLUMN_OPTION
from nlp.pii_patterns import PHONE_REGIONS
from nlp.texts import DataError, read_records

if TYPE_CHECKING:
    from spacy.language import Language

console = Console()
WRITERS = {".csv": ",", ".tsv": "\t", ".jsonl": None}


def bundle_linker(folder: str | Path) -> Language:
    """The linker a bundle was trained with (its KG, alias table and settings), without loading
    its model; every file is checked against the bundle's manifest first.

    Raises:
        BundleError: the bundle is missing, incomplete or modified.
    """
    from fusion.bundle import load_linker, read_meta, verify_bundle
    from kg.store_graph import open_saved_graph

    folder = Path(folder)
    meta = read_meta(folder)
    verify_bundle(folder, meta)
    _, nlp = load_linker(folder, meta, open_saved_graph(folder / "kg"))
    return nlp


def config_linker(path: str | Path) -> Language:
    """The linker a training config describes (its KG, alias table and linker settings).

    Raises:
        ConfigError: the config is wrong, naming each key.
    """
    from fusion.config import load_config
    from fusion.setup import linker_options, open_graph
    from nlp.linker import from_kg

    config = load_config(path)
    return from_kg(open_graph(config), **linker_options(config))


def linked(nlp: Language, texts: Sequence[str]) -> list[list[dict[str, Any]]]:
    """The linked mentions of each text (`nlp.linker.linked_entities` records)."""
    from nlp.linker import linked_entities

    return [linked_entities(doc) for doc in nlp.pipe(list(texts), batch_size=256)]


@dataclass
class Summary:
    """What an anonymization did: texts, redactions by type and, with a linker, the texts whose
    linked KG entities are the same before and after."""

    texts: int = 0
    redacted_texts: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    same_entities: int | None = None

    def line(self) -> str:
        kinds = ", ".join(f"{PLACEHOLDERS[k]} {n:,}" for k, n in self.by_type.most_common())
        text = (
            f"{self.texts:,} texts, {self.redacted_texts:,} with personal data; "
            f"{sum(self.by_type.values()):,} redactions" + (f" ({kinds})" if kinds else "")
        )
        if self.same_entities is not None:
            text += (
                f"; linked KG entities unchanged in {self.same_entities:,} of {self.texts:,} texts"
            )
        return text


def same_entities(before: list[list[dict[str, Any]]], after: list[list[dict[str, Any]]]) -> int:
    """How many texts link the same KG entities (as multisets of IRIs) before and after."""
    return sum(
        Counter(e["iri"] for e in b) == Counter(e["iri"] for e in a)
        for b, a in zip(before, after, strict=True)
    )


def anonymize_texts(
    texts: Sequence[str], anonymizer: Anonymizer, linker: Language | None = None
) -> tuple[list[str], Summary]:
    """The redacted texts and what was done; with ``linker``, its KG mentions are protected
    and the linked entities compared before and after."""
    texts = list(texts)
    before = linked(linker, texts) if linker is not None else None
    protected = [mention_spans(spans) for spans in before] if before is not None else None
    redacted = anonymizer.redact(texts, protected)
    summary = Summary(texts=len(texts), redacted_texts=sum(bool(r.spans) for r in redacted))
    for r in redacted:
        summary.by_type.update(r.counts)
    out = [r.text for r in redacted]
    if linker is not None and before is not None:
        summary.same_entities = same_entities(before, linked(linker, out))
    return out, summary


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """``rows`` to ``path`` as CSV, TSV or JSON Lines (by its suffix), atomically."""
    suffix = path.suffix.lower()
    if suffix not in WRITERS:
        raise DataError(
            f"{path}: cannot write {suffix or 'extensionless'} files; use .csv, .tsv or .jsonl"
        )
    delimiter = WRITERS[suffix]
    if delimiter is None:
        write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(
        buffer, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def anonymize_command(
    data: Path = typer.Argument(..., help="CSV, TSV or JSONL file of texts."),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="File to write (.csv, .tsv or .jsonl): the same rows and columns, the texts redacted.",
    ),
    text_column: str = TEXT_COLUMN_OPTION,
    bundle: Path | None = typer.Option(
        None, "--bundle", help="Keep the KG entities this model's linker finds in the texts."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Keep the KG entities this training config's linker finds."
    ),
    spacy_model: str | None = typer.Option(
        None,
        "--spacy-model",
        help="An installed trained spaCy pipeline (e.g. en_core_web_sm) whose PERSON and place "
        "entities are redacted too (default: the built-in name finder alone).",
    ),
    regions: list[str] = typer.Option(
        list(PHONE_REGIONS),
        "--phone-region",
        help="Region (ISO code) a phone number without +country code is read in; repeat.",
    ),
) -> None:
    """Redact personal data from the texts of a data file, with typed placeholders.

    Names, e-mails, phones, addresses and IBAN, card and SSN numbers become [PERSON], [EMAIL],
    [PHONE], ..."""
    if bundle is not None and config is not None:
        raise AnonymizeError(
            "give --bundle or --config (the linker whose KG names are kept), not both"
        )
    rows = read_records(data, required=(text_column,))
    anonymizer = Anonymizer(spacy_model, _checked_regions(regions))
    linker = bundle_linker(bundle) if bundle else config_linker(config) if config else None
    texts, summary = anonymize_texts([r[text_column] for r in rows], anonymizer, linker)
    write_rows(output, [{**r, text_column: t} for r, t in zip(rows, texts, strict=True)])
    console.print(f"{summary.line()} -> {output}", highlight=False)


def _checked_regions(regions: list[str]) -> list[str]:
    import phonenumbers

    known = phonenumbers.SUPPORTED_REGIONS
    bad = [r for r in regions if r.upper() not in known]
    if bad:
        raise AnonymizeError(
            f"--phone-region {', '.join(bad)}: not a region libphonenumber knows; use ISO 3166 "
            "codes such as US, GB, DE, FR, IN"
        )
    return [r.upper() for r in regions]
