"""One YAML file drives a training run; ``key=value`` overrides change any field.

    kgfuse train configs/pokedex.yaml train.epochs=3 model.mode=text

The sections are the pydantic dataclasses of fusion/settings.py. Every problem (an unknown key, a
value of the wrong type, an out-of-range setting, settings that contradict each other) is
collected and reported at once as one `ConfigError`, a line per problem, each starting with its
dotted key: ``train.lr: must be a number above 0 (got -1)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from fusion.config_keys import describe, field_schema, keys, sections
from fusion.settings import (
    AUTO,
    DataConfig,
    EncoderConfig,
    KGSource,
    LinkerConfig,
    ModelConfig,
    RunConfig,
    SubgraphSettings,
    TrainSettings,
)
from kg.encoding import recode_hint
from kg.errors import KGFuseError

__all__ = [
    "AUTO",
    "ConfigError",
    "DataConfig",
    "EncoderConfig",
    "KGSource",
    "LinkerConfig",
    "ModelConfig",
    "RunConfig",
    "SubgraphSettings",
    "TrainSettings",
    "config_from_dict",
    "load_config",
    "parse_overrides",
]

# Keys that existed once: naming one says what replaced it.
RETIRED = {
    "subgraph.relation_counts": "replaced by subgraph.counts (relations: counts by path and "
    "relation)",
}
# Names people reach for out of habit, to suggest the key kgfuse uses.
SYNONYMS = {
    "learning_rate": "train.lr",
    "num_epochs": "train.epochs",
    "max_epochs": "train.epochs",
    "hidden_size": "model.hidden",
    "num_layers": "model.gnn_layers",
    "max_seq_length": "encoder.max_length",
    "model_path": "encoder.path",
}


class ConfigError(KGFuseError):
    """A training config has unknown keys, wrong types or bad values (all listed).

    Attributes:
        problems: ``(dotted key, what is wrong)`` pairs; the key is "" for the file as a whole.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []


# ----------------------------------------------------------------- overrides


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """``key=value`` arguments as ``(key, value)``: the value is read as YAML, except for a
    string field, which takes the text as written (``output=2024`` is the folder "2024")."""
    if isinstance(overrides, str | bytes):  # its characters would be read one by one
        raise ConfigError(
            f"overrides are a list of key=value strings, not one string: pass [{overrides!r}]"
        )
    out = []
    for item in overrides:
        if not isinstance(item, str):
            raise ConfigError(
                f"override {item!r} is not a key=value string (e.g. 'train.epochs=3')"
            )
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} is not of the form key=value (e.g. train.epochs=3)"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, ValueError, RecursionError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(
                f"override {key}=... is not a YAML value ({reason}); quote a string, "
                "e.g. output='runs/x'"
            ) from None
        out.append((key, _typed(field_schema(key) or {}, value, raw.strip())))
    return out


def _typed(prop: dict[str, Any], value: Any, raw: str) -> Any:
    """``value`` (parsed as YAML) as the field ``prop`` reads it: the text as written for a
    string, a number that YAML 1.1 leaves as text (``1e-3``) for a number."""
    kinds = {p.get("type") for p in [prop, *prop.get("anyOf", [])]}
    if "string" in kinds and "enum" not in prop and not isinstance(value, str):
        return "" if value is None else raw
    if "number" in kinds and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _set_dotted(
    data: dict[str, Any], key: str, value: Any, problems: list[tuple[str, str]]
) -> None:
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            problems.append((key, f"{where} is a value, not a section: override it as a whole"))
            return
        node = child
    node[parts[-1]] = value


# ----------------------------------------------------------------- validation


def _unknown(key: str) -> str:
    if key in RETIRED:
        return RETIRED[key]
    section, _, name = key.rpartition(".")
    known = [k for k, _ in keys()]
    siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == section]
    close = difflib.get_close_matches(name, siblings, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {f'{section}.' if section else ''}{close[0]}?"
    habit = difflib.get_close_matches(name, list(SYNONYMS), n=1, cutoff=0.75)
    elsewhere = [k for k in known if k.rpartition(".")[2] == name]
    if habit or elsewhere:
        return f"unknown key; did you mean {SYNONYMS[habit[0]] if habit else elsewhere[0]}?"
    listed = (
        ", ".join(siblings) if section else ", ".join(dict.fromkeys(k.split(".")[0] for k in known))
    )
    return f"unknown key; {section or 'a config'} has {listed}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _problems(error: ValidationError, data: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    """Each of pydantic's errors as ``(dotted key, message)``, one per key."""
    out: dict[str, str] = {}
    for e in error.errors():
        loc = [str(p) for p in e["loc"]]
        path = [prefix] if prefix else []
        for part in loc:  # the field names; pydantic adds list indexes and union branches
            if field_schema(".".join([*path, part])) is None:
                if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
                    path.append(part)
                break
            path.append(part)
        key = ".".join(path)
        if key in out:
            continue
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            out[key] = _unknown(key)
        elif e["type"] == "value_error":
            out[key] = str(e["ctx"]["error"])
        elif key == prefix:
            out[key] = f"must be a section (a mapping of keys) (got {_shown(_lookup(data, path))})"
        else:
            prop = field_schema(key) or {}
            out[key] = f"must be {describe(prop)} (got {_shown(_lookup(data, path))})"
    return list(out.items())


def _validate(data: dict[str, Any], problems: list[tuple[str, str]]) -> RunConfig:
    """`RunConfig` from ``data``, section by section: a bad section is reported and replaced
    by its defaults, so that every section's problems are found in one pass."""
    values: dict[str, Any] = {}
    for name in data:
        if name not in {f.name for f in dataclasses.fields(RunConfig)}:
            problems.append((str(name), _unknown(str(name))))
    for name, cls in sections().items():
        if name not in data:
            continue
        section = {} if data[name] is None else data[name]
        try:
            values[name] = TypeAdapter(cls).validate_python(section)
        except ValidationError as e:
            problems.extend(_problems(e, data, name))
    if "output" in data:
        try:
            values["output"] = (
                TypeAdapter(RunConfig).validate_python({"output": data["output"]}).output
            )
        except ValidationError as e:
            problems.extend(_problems(e, data, ""))
    return RunConfig(**values)


def _checks(config: RunConfig, bad: set[str]) -> Iterator[tuple[str, str]]:
    """Settings that contradict each other (sections already reported are skipped)."""
    kg, data, train, model = config.kg, config.data, config.train, config.model
    if "kg" not in bad:
        given = [k for k in ("files", "endpoint", "store") if getattr(kg, k)]
        if len(given) != 1:
            yield (
                "kg",
                (
                    "set exactly one of 'kg.files' (triples files or a compiled KG folder), "
                    "'kg.endpoint' (a SPARQL endpoint URL) and 'kg.store' (an Oxigraph store folder)"
                    + (f"; found {', '.join('kg.' + k for k in given)}" if given else "")
                ),
            )
        if kg.endpoint and not kg.endpoint.startswith(("http://", "https://")):
            yield "kg.endpoint", f"'kg.endpoint' must be an http(s) URL (got {kg.endpoint!r})"
    if "output" not in bad and not config.output.strip():
        yield (
            "output",
            "must name the run's folder (e.g. output=runs/my-run); empty, the run would write "
            "its bundle, checkpoints and metrics into the current folder",
        )
    if "data" not in bad and not (data.train or data.path):
        yield "data", "'data.train' or 'data.path' is required: the labelled texts"
    if "data" not in bad and data.train:
        yield from _training_file_reused(data.train, data.val, data.tests)
    if not bad & {"train", "data"} and train.self_training_rounds > 0 and not data.unlabeled:
        yield (
            "train.self_training_rounds",
            ("needs 'data.unlabeled': a file of texts without labels"),
        )
    if not bad & {"model", "kg"} and model.reads_walks:
        if not kg.label_map:
            yield (
                "model.graph_encoder",
                (
                    "paths scores each class through its KG node: set 'kg.label_map', "
                    "or use model.graph_encoder=rgcn"
                ),
            )
        if kg.source:
            yield (
                "model.graph_encoder",
                (
                    "paths walks the whole compiled KG: give 'kg.files', "
                    "or use model.graph_encoder=rgcn with a triple store"
                ),
            )


def _training_file_reused(train: str, val: str, tests: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Validation or a test that is the training file itself: its scores would be scores on
    texts the model trained on."""
    train_path = Path(train).resolve()

    def same(other: str) -> bool:
        path = Path(other).resolve()
        if path == train_path:
            return True
        return path.exists() and train_path.exists() and os.path.samefile(path, train_path)

    if val and same(val):
        yield (
            "data.val",
            f"is the training file ({train}): validation would score texts the model trained "
            "on, so early stopping, the checkpoint and the temperature would reward memorising; "
            "give a file of other texts, or leave data.val out to carve validation from "
            "data.train",
        )
    for name, test in tests.items():
        if test and same(test):
            yield (
                f"data.tests.{name}",
                f"is the training file ({train}): its scores would be training scores; give a "
                "file of texts the model does not train on",
            )


def _report(problems: list[tuple[str, str]], where: str) -> ConfigError:
    lines = [f"{key}: {message}" if key else message for key, message in problems]
    return ConfigError(f"{len(problems)} problem(s){where}:\n  - " + "\n  - ".join(lines), problems)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: plain YAML keeps the last
    one and drops the first without a word (a second ``train:`` section erased the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: keys it brings
                continue  # may be overridden, as YAML's merge allows
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"{key!r} is given twice (lines {seen[key]} and {line}); YAML would keep "
                    "only the last: merge them into one",
                    key_node.start_mark,
                )
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(path: Path, e: yaml.YAMLError) -> str:
    """One line: the file, line and column, and what PyYAML found (its own message spans
    lines, quotes the source and calls the file "<unicode string>")."""
    mark = getattr(e, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if "'\\t'" in problem:  # PyYAML's words for a tab: found character '\t' that ...
        return f"{where}: a tab indents this line; YAML indents with spaces only: use spaces"
    context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and start is not None and mark is not None and start.line != mark.line:
        context += f" from line {start.line + 1}"
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = "is a folder, not a YAML file" if path.is_dir() else "not found"
        raise ConfigError(f"config file {path} {what}; see configs/ for examples")
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as e:
        hint = recode_hint(path.read_bytes()[:2])
        raise ConfigError(f"{path} is not UTF-8 ({e.reason} at byte {e.start}); {hint}") from None
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_problem(path, e)) from e
    except (ValueError, RecursionError) as e:
        reason = str(e).splitlines()[0] if str(e) else "nested too deep"
        raise ConfigError(f"{path} holds a value YAML cannot read: {reason}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (kg, data, model, ...)")
    return loaded or {}


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read ``path`` (YAML), apply ``key=value`` overrides, validate everything at once.

    Relative file paths inside a config are relative to the current directory (the repository
    root for the shipped configs), like every other path given to the CLI.

    Raises:
        ConfigError: every problem, one line each, starting with its dotted key.
    """
    if isinstance(path, dict):
        raise ConfigError(
            "load_config reads a YAML file; build a config from a dict with "
            "fusion.config.config_from_dict(data)"
        )
    if path is not None and not isinstance(path, str | os.PathLike):
        raise ConfigError(
            f"the config is the path of a YAML file (a str or pathlib.Path) or None, not "
            f"{type(path).__name__} {path!r}"
        )
    data = _read(Path(path)) if path is not None else {}
    problems: list[tuple[str, str]] = []
    for key, value in parse_overrides(overrides or []):
        _set_dotted(data, key, value, problems)
    config = _validate(data, problems)
    problems.extend(_checks(config, {key.split(".")[0] for key, _ in problems}))
    if problems:
        raise _report(problems, f" in {path}" if path is not None else "")
    return config


def config_from_dict(data: dict[str, Any], where: str = "config") -> RunConfig:
    """A `RunConfig` from a plain dict (e.g. the resolved config stored in a bundle)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where} must be a mapping of sections (kg, data, model, ...), not "
            f"{type(data).__name__} {data!r}"
        )
    problems: list[tuple[str, str]] = []
    config = _validate(data, problems)
    if problems:
        raise ConfigError(
            f"{where} holds an invalid config: " + "; ".join(f"{k}: {m}" for k, m in problems),
            problems,
        )
    return config
