"""Which triple syntaxes kgfuse reads, and how a file name maps to one."""

from __future__ import annotations

from pathlib import Path

from kg.errors import KGLoadError

# format name -> file extensions (without the dot). Delimited formats hold head, relation, tail.
FORMATS: dict[str, tuple[str, ...]] = {
    "turtle": ("ttl", "turtle"),
    "ntriples": ("nt", "ntriples"),
    "nquads": ("nq", "nquads"),
    "trig": ("trig",),
    "n3": ("n3",),
    "json-ld": ("jsonld", "json-ld"),
    "xml": ("rdf", "xml", "owl", "rdfxml"),
    "tsv": ("tsv", "tab"),
    "csv": ("csv",),
}
DELIMITED = ("tsv", "csv")
_BY_EXTENSION = {ext: name for name, exts in FORMATS.items() for ext in exts}


def describe_formats() -> str:
    return ", ".join(f"{name} (.{', .'.join(exts)})" for name, exts in FORMATS.items())


def detect_format(path: str | Path, explicit: str | None = None) -> str:
    """The format of ``path``: ``explicit`` when given, else from the extension (``.gz`` peeled)."""
    if explicit is not None:
        name = explicit.lower()
        name = _BY_EXTENSION.get(name, name)
        if name not in FORMATS:
            raise KGLoadError(
                f"unknown format {explicit!r}; kgfuse reads {describe_formats()}", path
            )
        return name
    suffixes = [s.lower().lstrip(".") for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == "gz":
        suffixes.pop()
    ext = suffixes[-1] if suffixes else ""
    if ext not in _BY_EXTENSION:
        raise KGLoadError(
            f"cannot tell the triple format from the extension {('.' + ext) if ext else '(none)'}; "
            f"kgfuse reads {describe_formats()}. Rename the file or pass the format explicitly",
            path,
        )
    return _BY_EXTENSION[ext]
