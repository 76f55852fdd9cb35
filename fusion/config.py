"""One YAML file drives a training run; ``key=value`` overrides change any field.

    kgfuse train configs/pokedex.yaml train.epochs=3 model.mode=text

Every problem (an unknown key, a value of the wrong type, an out-of-range setting) is collected
and reported at once, each naming the dotted key, what was expected and what was given.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from fusion.encoder import EncoderConfig
from fusion.examples import SubgraphSettings
from fusion.model import ModelConfig
from kg.errors import KGFuseError

AUTO = "auto"  # a setting kgfuse chooses itself, from the KG and the validation split


class ConfigError(KGFuseError):
    """A training config has unknown keys, wrong types or bad values (all listed)."""


@dataclass(frozen=True)
class KGSource:
    """Attributes (one of ``files``, ``endpoint`` and ``store``):
    files: triples files to compile, or one compiled KG folder.
    endpoint: a SPARQL 1.1 endpoint URL holding the KG (read on demand, never loaded whole).
    store: an on-disk Oxigraph store folder (``kgfuse kg load --backend oxigraph``).
    label_map: optional TSV ``label<TAB>entity IRI``: each class becomes a scored graph node.
    """

    files: tuple[str, ...] = ()
    endpoint: str = ""
    store: str = ""
    label_map: str = ""

    @property
    def source(self) -> str:
        """The triple store (endpoint URL or store folder), or "" for files."""
        return self.endpoint or self.store


VAL_SPLITS = ("entity", "random")


@dataclass(frozen=True)
class DataConfig:
    """Attributes (files, split column or automatic split: see `fusion.data.load_splits`):
    train, val, tests: the labelled files; ``tests`` names each test set. Test files are read
        only to report: no choice (epoch, checkpoint, temperature, automatic setting) reads them.
    path, split_column, test_fraction: one file, split by a column or at random.
    text_column, label_column: the columns holding the text and its label.
    val_split: how validation is carved out of the training texts when no val file is given.
        "entity": about ``val_fraction`` of the texts, by held-out entity (no training text
        mentions a held-out entity: fusion/split.py), plus ``val_seen_fraction`` of the rest at
        random; "random": ``val_fraction`` at random, stratified.
    val_fraction, val_seen_fraction: the shares above.
    holdout_types: rdf:type IRIs of the entities validation may hold out (default: the type
        the most training texts mention).
    unlabeled: a file of texts without labels (.txt one per line, or .csv/.tsv/.jsonl with
        ``text_column``) for self-training (``train.self_training_rounds``).
    """

    train: str = ""
    val: str = ""
    tests: dict[str, str] = field(default_factory=dict)
    path: str = ""
    split_column: str = ""
    text_column: str = "text"
    label_column: str = "label"
    val_split: str = "entity"
    val_fraction: float = 0.15
    val_seen_fraction: float = 0.05
    holdout_types: tuple[str, ...] = ()
    test_fraction: float = 0.0
    unlabeled: str = ""

    def problems(self) -> list[str]:
        out = []
        if self.val_split not in VAL_SPLITS:
            out.append(f"'data.val_split' must be one of {VAL_SPLITS} (got {self.val_split!r})")
        for name in ("val_fraction", "val_seen_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                out.append(f"'data.{name}' must be in [0, 1) (got {value})")
        if self.val_fraction + self.val_seen_fraction + self.test_fraction >= 0.9:
            out.append(
                "'data.val_fraction' + 'data.val_seen_fraction' + 'data.test_fraction' leave "
                "less than 10% of the texts for training"
            )
        return out


@dataclass(frozen=True)
class LinkerSettings:
    """Attributes:
    threshold, head_match, types: the `kg_linker` settings of the same names.
    aliases: an alias table (TSV alias<TAB>entity, nlp/alias_table.py) whose names are linked
        too, e.g. learned with `kgfuse aliases learn`; copied into the bundle.
    """

    threshold: float = 0.55
    head_match: bool = False
    types: tuple[str, ...] = ()
    aliases: str = ""


@dataclass(frozen=True)
class TrainSettings:
    """Attributes:
    epochs: passes over the training set (early stopping may end sooner).
    batch_size: texts per step.
    lr: learning rate of the graph encoder and heads; lora_lr: of the encoder's trainable part.
    weight_decay, warmup (fraction of steps), clip (max gradient norm, 0 = off).
    class_weights: weight the loss by inverse class frequency.
    patience: epochs without a better validation accuracy (on val:unseen, see `fusion.selection`;
        a tie goes to the lower validation loss) before stopping.
    seed: of everything (the validation split, data order, dropout, initialisation).
    mask_label_facts: share of training texts whose own entity-label facts are hidden (see
        fusion/examples.py): 1.0 forces reasoning over neighbours; below 1.0 the model also
        learns to use a known fact, as a text about a seen entity can at test time. When it is
        above 0, val:unseen texts are masked too, as stand-ins for new entities. ``auto``:
        1.0 when the KG's label facts restate the training labels, else 0 (fusion/auto.py).
    mask_mentions: share of training texts whose linked mentions are all replaced by the
        tokenizer's mask token, drawn anew every epoch: the text branch cannot memorise a name
        and has to use the graph, as for a name it has never seen.
    branch_loss: weight of a fused model's per-branch losses: the label counts' logits and the
        graph encoder's logits are each also scored against the label on their own. Without
        them the text branch, which can memorise a training text's names, fits the training
        set first and the KG branches stop learning (modality competition, as in Wang et al.,
        CVPR 2020, "What makes training multi-modal classification networks hard?").
    swap_mentions: share of the training texts whose class is a function of one entity they
        mention that get a copy naming another entity of the same type, labelled with that
        entity's class (fusion/augment.py); 0 = off.
    adversarial: FGM adversarial training (Miyato et al., ICLR 2017): each step also trains on
        the batch with its word embeddings moved by this L2 norm per text along the loss
        gradient; 0 = off. It costs one more forward and backward pass per step.
    self_training_rounds: rounds of self-training on ``data.unlabeled`` (fusion/self_training.py):
        each labels those texts with the model's calibrated predictions, keeps the ones at or
        above ``self_training_threshold`` and trains on; a round that lowers the validation
        score is undone and ends them. 0 = off.
    self_training_threshold: the calibrated probability a pseudo-label needs.
    tensorboard: also log to TensorBoard (needs the tensorboard package).
    threads: torch CPU threads (0 = torch's default).
    """

    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-3
    lora_lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    clip: float = 1.0
    class_weights: bool = False
    patience: int = 2
    seed: int = 0
    mask_label_facts: float | None = None
    mask_mentions: float = 0.0
    branch_loss: float = 1.0
    swap_mentions: float = 0.0
    adversarial: float = 0.0
    self_training_rounds: int = 0
    self_training_threshold: float = 0.9
    tensorboard: bool = False
    threads: int = 0

    def problems(self) -> list[str]:
        out = []
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                out.append(f"'train.{name}' must be at least 1 (got {getattr(self, name)})")
        if self.branch_loss < 0:
            out.append(f"'train.branch_loss' must be 0 (off) or more (got {self.branch_loss})")
        for name in ("lr", "lora_lr"):
            if getattr(self, name) <= 0:
                out.append(f"'train.{name}' must be positive (got {getattr(self, name)})")
        if self.self_training_rounds < 0:
            out.append(
                f"'train.self_training_rounds' must be 0 (off) or more (got {self.self_training_rounds})"
            )
        if not 0.0 < self.self_training_threshold <= 1.0:
            out.append(
                f"'train.self_training_threshold' must be in (0, 1] (got {self.self_training_threshold})"
            )
        if self.adversarial < 0:
            out.append(f"'train.adversarial' must be 0 (off) or more (got {self.adversarial})")
        for name in ("mask_label_facts", "mask_mentions", "swap_mentions"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                out.append(f"'train.{name}' must be in [0, 1] (got {value})")
        if not 0.0 <= self.warmup < 1.0:
            out.append(f"'train.warmup' must be in [0, 1) (got {self.warmup})")
        if self.threads < 0:
            out.append(f"'train.threads' must be 0 (torch's default) or more (got {self.threads})")
        return out


@dataclass(frozen=True)
class RunConfig:
    kg: KGSource = field(default_factory=KGSource)
    data: DataConfig = field(default_factory=DataConfig)
    linker: LinkerSettings = field(default_factory=LinkerSettings)
    subgraph: SubgraphSettings = field(default_factory=SubgraphSettings)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    output: str = "runs/model"

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}=...: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    out = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {item!r} is not of the form key=value (e.g. train.epochs=3)"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, ValueError, RecursionError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(
                f"override {key.strip()}=... is not a YAML value ({reason}); quote a string, "
                "e.g. output='runs/x'"
            ) from None
        out.append((key.strip(), value))
    return out


def _build(cls: type, data: Any, prefix: str, problems: list[str]) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, appending every problem to ``problems``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(
            f"'{prefix.rstrip('.')}' must be a section (mapping), got {type(data).__name__}"
        )
        return cls()
    known = {f.name: f for f in fields(cls)}
    for key in sorted(set(data) - set(known)):
        problems.append(f"unknown key '{prefix}{key}'; expected one of {sorted(known)}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name in known:
        if name not in data:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, data[name], f"{prefix}{name}.", problems)  # type: ignore[arg-type]
            continue
        ok, value = _coerce(hint, data[name])
        if ok:
            values[name] = value
        else:
            problems.append(f"'{prefix}{name}' must be {_describe(hint)} (got {data[name]!r})")
    try:
        built = cls(**values)
    except KGFuseError as e:
        problems.append(str(e))
        return cls()
    check = getattr(built, "problems", None)
    if callable(check):
        problems.extend(check())
    return built


def _coerce(hint: Any, value: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        if value is None:
            return True, ""
        return isinstance(value, (str, int, float)) and not isinstance(value, bool), str(value)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return True, tuple(value)
        return False, value
    if origin is dict:
        if value is None:
            return True, {}
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
        return ok, dict(value) if ok else value
    if isinstance(hint, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if type(None) in typing.get_args(hint) and len(options) == 1:
            # ``X | None``: None (written "auto" in YAML) lets kgfuse choose the value itself
            if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
                return True, None
            return _coerce(options[0], value)
        return True, value
    return True, value


def _describe(hint: Any) -> str:
    if isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint):
        (option,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return f"{_describe(option)} or {AUTO!r}"
    origin = typing.get_origin(hint)
    if origin is tuple:
        return "a list of strings"
    if origin is dict:
        return "a mapping of names to strings"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, str(hint)
    )


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read ``path`` (YAML), apply ``key=value`` overrides, validate everything at once.

    Relative file paths inside a config are relative to the current directory (the repository
    root for the shipped configs), like every other path given to the CLI.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path} is not UTF-8 ({e.reason} at byte {e.start})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from e
        except (ValueError, RecursionError) as e:
            reason = str(e).splitlines()[0] if str(e) else "nested too deep"
            raise ConfigError(f"{path} holds a value YAML cannot read: {reason}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of sections (kg, data, model, ...)")
        data = loaded or {}
    for key, value in parse_overrides(overrides or []):
        _set_dotted(data, key, value)
    problems: list[str] = []
    config = _build(RunConfig, data, "", problems)
    given = [k for k in ("files", "endpoint", "store") if getattr(config.kg, k)]
    if len(given) != 1:
        problems.append(
            "set exactly one of 'kg.files' (triples files or a compiled KG folder), "
            "'kg.endpoint' (a SPARQL endpoint URL) and 'kg.store' (an Oxigraph store folder)"
            + (f"; found {', '.join('kg.' + k for k in given)}" if given else "")
        )
    if config.kg.endpoint and not config.kg.endpoint.startswith(("http://", "https://")):
        problems.append(f"'kg.endpoint' must be an http(s) URL (got {config.kg.endpoint!r})")
    if not (config.data.train or config.data.path):
        problems.append("'data.train' or 'data.path' is required: the labelled texts")
    if config.train.self_training_rounds > 0 and not config.data.unlabeled:
        problems.append(
            "'train.self_training_rounds' needs 'data.unlabeled': a file of texts without labels"
        )
    if config.model.reads_walks:
        if not config.kg.label_map:
            problems.append(
                "'model.graph_encoder: paths' scores each class through its KG node: set "
                "'kg.label_map', or use model.graph_encoder=rgcn"
            )
        if config.kg.source:
            problems.append(
                "'model.graph_encoder: paths' walks the whole compiled KG: give 'kg.files', "
                "or use model.graph_encoder=rgcn with a triple store"
            )
    if problems:
        where = f" in {path}" if path is not None else ""
        raise ConfigError(f"{len(problems)} problem(s){where}:\n  - " + "\n  - ".join(problems))
    return config


def config_from_dict(data: dict[str, Any], where: str = "config") -> RunConfig:
    """A `RunConfig` from a plain dict (e.g. the resolved config stored in a bundle)."""
    problems: list[str] = []
    config = _build(RunConfig, data, "", problems)
    if problems:
        raise ConfigError(f"{where} holds an invalid config: " + "; ".join(problems))
    return config
