"""Alias tables: extra names of KG entities, matched by the linker like the KG's own labels.

A KG often names an entity once and tersely ("fatigue", "vomiting"), while texts use everyday
words ("worn out", "throwing up"). An alias table adds such names without touching the KG. It
comes from a user's synonym list, or is learned from labelled texts (nlp/alias_learning.py,
``kgfuse aliases learn``), which writes the same format with its evidence in extra columns.

The file is TSV with a header row; ``alias`` and ``entity`` are required, the rest optional:

    alias<TAB>entity<TAB>support<TAB>occurrences<TAB>similarity
    worn out<TAB>http://example.org/symptomkb/symptom_fatigue<TAB>12<TAB>13<TAB>0.61
    throwing up<TAB>vomiting

``entity`` is an IRI or a label naming exactly one entity. For a learned alias, ``support`` is
the number of training texts where it was aligned with the entity, ``occurrences`` the number of
texts holding it, ``similarity`` the mean cosine of the two. Lines starting with ``#`` before
the header are comments; after it every line is a row (an alias may start with "#"). The linker
matches a table's names whatever their case (all-capital short forms such as "SOB" only as
written, as it does KG labels) and inflection ("neck hurts" matches "neck hurt", "throwing up"
matches "threw up"), but in their word order: list the variants a corpus uses (learning does),
or use KG labels for order-free matching.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from kg.errors import AmbiguousEntityError, EntityNotFoundError
from kg.files import as_path, write_text
from kg.graph import KnowledgeGraph
from nlp.errors import LinkingError

COLUMNS = ("alias", "entity", "support", "occurrences", "similarity")
REQUIRED = COLUMNS[:2]


@dataclass(frozen=True)
class TableAlias:
    alias: str
    entity: str  # IRI, or a label naming one entity
    support: int | None = None  # learned: texts where the alias was aligned with the entity
    occurrences: int | None = None  # learned: texts holding the alias
    similarity: float | None = None  # learned: mean cosine of alias and entity name


class AliasTable:
    """Rows of extra names; `resolve` maps them onto one graph's entity ids."""

    def __init__(self, rows: list[TableAlias], source: str = "<memory>"):
        self.rows = list(rows)
        self.source = source

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def load(cls, path: str | Path) -> AliasTable:
        """Read a table; every problem names the file and line and how to fix it."""
        path = as_path(path, "the alias table")
        if not path.is_file():
            raise LinkingError(
                f"alias table {path} not found; learn one with `kgfuse aliases learn` or write "
                "a TSV with the columns alias<TAB>entity"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise LinkingError(f"cannot read alias table {path}: {e}") from e
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<text>") -> AliasTable:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        while lines and lines[0][1].lstrip().startswith("#"):
            lines.pop(0)  # comments before the header
        if not lines:
            raise LinkingError(f"{source}: empty alias table; it needs a header alias<TAB>entity")
        header_line, header_text = lines[0]
        header = [h.strip().lower() for h in header_text.split("\t")]
        missing = [c for c in REQUIRED if c not in header]
        unknown = [c for c in header if c not in COLUMNS]
        if missing or unknown:
            raise LinkingError(
                f"{source}:{header_line}: the header must name the columns alias and entity "
                f"(optional: {', '.join(COLUMNS[2:])}), tab-separated; got {header_text!r}"
            )
        rows = []
        for n, line in lines[1:]:
            try:
                cells = next(csv.reader(io.StringIO(line), delimiter="\t", quoting=csv.QUOTE_NONE))
            except csv.Error as e:  # a cell over csv's field limit (131,072 characters)
                raise LinkingError(f"{source}:{n}: cannot read this row ({e})") from e
            if len(cells) != len(header):
                raise LinkingError(
                    f"{source}:{n}: expected {len(header)} tab-separated columns "
                    f"({', '.join(header)}), found {len(cells)}"
                )
            row = dict(zip(header, (c.strip() for c in cells), strict=True))
            if not row["alias"] or not row["entity"]:
                raise LinkingError(f"{source}:{n}: empty alias or entity")
            try:
                rows.append(
                    TableAlias(
                        row["alias"],
                        row["entity"],
                        _int(row.get("support")),
                        _int(row.get("occurrences")),
                        _float(row.get("similarity")),
                    )
                )
            except ValueError as e:
                raise LinkingError(f"{source}:{n}: {e}") from e
        return cls(rows, source)

    def save(self, path: str | Path) -> Path:
        """Write the table as TSV (atomically: a failed write leaves no partial file)."""
        path = Path(path)
        learned = any(r.support is not None for r in self.rows)
        columns = COLUMNS if learned else REQUIRED
        lines = ["\t".join(columns)]
        for r in self.rows:
            cells = [r.alias, r.entity]
            if learned:
                cells += [
                    "" if r.support is None else str(r.support),
                    "" if r.occurrences is None else str(r.occurrences),
                    "" if r.similarity is None else f"{r.similarity:.3f}",
                ]
            lines.append("\t".join(" ".join(c.split()) for c in cells))  # no tab, CR or LF
        write_text(path, "\n".join(lines) + "\n")
        return path

    def resolve(self, graph: KnowledgeGraph) -> dict[int, list[str]]:
        """Entity id -> its extra names. Raises naming every row whose entity the graph lacks
        or cannot tell apart (first five), so a table for another KG fails loudly."""
        names: dict[int, list[str]] = defaultdict(list)
        problems = []
        for r in self.rows:
            try:
                e = graph.resolve(r.entity)
            except (EntityNotFoundError, AmbiguousEntityError) as err:
                problems.append(f"{r.alias!r} -> {err}")
                continue
            if r.alias not in names[e]:
                names[e].append(r.alias)
        if problems:
            shown = "; ".join(problems[:5]) + (
                f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            )
            raise LinkingError(
                f"alias table {self.source}: {len(problems)} row(s) name no single entity of "
                f"the KG ({shown}); fix or remove them, or learn the table on this KG"
            )
        return dict(names)


def _int(value: str | None) -> int | None:
    return None if value is None or value == "" else int(_checked(value, int))


def _float(value: str | None) -> float | None:
    return None if value is None or value == "" else float(_checked(value, float))


def _checked(value: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
