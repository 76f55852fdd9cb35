"""The training config's sections, one pydantic dataclass each: the one source of truth for what a
key means, its type, its default and its bounds.

fusion/config.py reads a YAML file and ``key=value`` overrides into `RunConfig` and reports every
problem at once; ``kgfuse config schema`` exports these models as JSON Schema, and
``kgfuse config keys`` (and the README's table) lists their fields from the same descriptions.
The sections are frozen dataclasses, so ``dataclasses.replace`` gives a validated copy. A
field's docstring is its description (pydantic's ``use_attribute_docstrings``).

This module imports no torch: the model, encoder and subgraph code import their sections from it.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass

from nlp.linker_settings import Bool, Int, Number, linker_field

AUTO = "auto"  # a setting kgfuse chooses itself, from the KG and the validation split


def _auto(value: Any) -> Any:
    """``auto`` (any case) and null both mean: kgfuse chooses."""
    return None if isinstance(value, str) and value.strip().lower() == AUTO else value


def _text(value: Any) -> Any:
    """A YAML number or null where a string is expected is read as its text (``output: 7``)."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _accepts_auto(schema: dict[str, Any]) -> None:
    """JSON Schema: ``auto`` is written as a string in YAML."""
    schema["anyOf"].insert(-1, {"const": AUTO})


def _names(value: Any) -> Any:
    """One string where a list of strings is expected is a list of one."""
    return [value] if isinstance(value, str) else value


def _mapping(value: Any) -> Any:
    return {} if value is None else value


Text = Annotated[str, BeforeValidator(_text)]
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
NamedFiles = Annotated[dict[str, str], BeforeValidator(_mapping)]
Share = Annotated[Number, Field(ge=0.0, lt=1.0)]
Rate = Annotated[Number, Field(ge=0.0, le=1.0)]
TrackerName = Literal["none", "tensorboard", "mlflow", "wandb"]  # train.tracker
AutoRate = Annotated[Rate | None, BeforeValidator(_auto), Field(json_schema_extra=_accepts_auto)]
AutoSwitch = Annotated[Bool | None, BeforeValidator(_auto), Field(json_schema_extra=_accepts_auto)]
AutoHops = Annotated[
    Annotated[Int, Field(ge=1, le=4)] | None,
    BeforeValidator(_auto),
    Field(json_schema_extra=_accepts_auto),
]

SECTION = ConfigDict(extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)


@dataclass(frozen=True, config=SECTION)
class KGSource:
    """Where the KG comes from: exactly one of ``files``, ``endpoint`` and ``store``."""

    files: Names = ()
    """triples files to compile in memory, or one compiled KG folder"""
    endpoint: Text = ""
    """a SPARQL 1.1 endpoint URL holding the KG (read on demand, never loaded whole)"""
    store: Text = ""
    """an on-disk Oxigraph store folder (kgfuse kg load --backend oxigraph)"""
    label_map: Text = ""
    """a TSV file of label and entity IRI: each class becomes a graph node the model scores"""

    @property
    def source(self) -> str:
        """The triple store (endpoint URL or store folder), or "" for files."""
        return self.endpoint or self.store


@dataclass(frozen=True, config=SECTION)
class DataConfig:
    """The labelled texts: files, a split column or an automatic split (`fusion.data.load_splits`).
    Test files are read only to report: no choice (epoch, checkpoint, temperature, automatic
    setting) reads them."""

    train: Text = ""
    """the labelled training file (.csv, .tsv or .jsonl)"""
    val: Text = ""
    """the validation file; none: carved out of train"""
    tests: NamedFiles = Field(default_factory=lambda: {})
    """test files by name, e.g. {seen: a.csv, unseen: b.csv}"""
    path: Text = ""
    """one labelled file, split by split_column or at random (test_fraction)"""
    split_column: Text = ""
    """with path: the column naming each row's split (train, val, test)"""
    text_column: Text = "text"
    """the column holding the text"""
    label_column: Text = "label"
    """the column holding the label"""
    val_split: Literal["entity", "random"] = "entity"
    """without a val file: entity (texts about held-out entities, which no training text mentions,
    plus val_seen_fraction at random) or random (stratified)"""
    val_fraction: Share = 0.15
    """share of the texts carved out for validation"""
    val_seen_fraction: Share = 0.05
    """entity split: share of the other texts added at random (val:seen)"""
    choice_splits: Int = Field(default=5, ge=1)
    """entity-held-out splits the automatic choices (hops, the text head's start) pool: validation's
    own, then others carved from the same labelled texts; 1: validation's own only"""
    holdout_types: Names = ()
    """rdf:type IRIs of the entities validation may hold out (empty: the type the most training
    texts mention)"""
    test_fraction: Share = 0.0
    """with path: share held out as a test set"""
    unlabeled: Text = ""
    """texts without labels (.txt one per line, or .csv/.tsv/.jsonl with text_column), for
    self-training"""

    @model_validator(mode="after")
    def _leaves_training_texts(self) -> DataConfig:
        if self.val_fraction + self.val_seen_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                "val_fraction + val_seen_fraction + test_fraction leave less than 10% of the "
                "texts for training"
            )
        return self


@dataclass(frozen=True, config=SECTION)
class LinkerConfig:
    """The `kg_linker` settings a run may change (nlp/linker_settings.py defines them)."""

    threshold: Number = linker_field("threshold")
    head_match: Bool = linker_field("head_match")
    types: Names = linker_field("types")
    aliases: Text = ""
    """an alias table (TSV of alias and entity) whose names are linked too, e.g. from kgfuse aliases
    learn; the bundle keeps a copy"""


@dataclass(frozen=True, config=SECTION)
class SubgraphSettings:
    """The subgraph around each text's linked entities and label nodes, and its label counts.

    ``hops: auto`` is chosen on val:unseen (fusion/reference.py). The counts: "sequences" is
    fusion/path_counts.py, "relations" and "entities" fusion/counter.py.
    """

    hops: AutoHops = None
    """the subgraph's radius and the longest label path counted, 1 to 4; auto: chosen on val:unseen"""
    max_nodes: Int = Field(default=64, ge=1)
    """nodes kept besides the seeds"""
    counts: Literal["sequences", "relations", "entities"] = "sequences"
    """the label counts a model may read: sequences (walks to each label node by relation sequence;
    a triple store counts relations), relations (direct and two-hop counts plus paths by
    first-hop relation), entities (direct and two-hop only)"""
    max_sequences: Int = Field(default=64, ge=1)
    """relation sequences kept: those reaching a label in the most texts"""


@dataclass(frozen=True, config=SECTION)
class EncoderConfig:
    """How the text encoder is loaded and tuned."""

    path: Text = ""
    """a local Hugging Face encoder folder; "" = the bundled MiniLM-L6-H384"""
    pooling: Literal["mean", "cls"] = "mean"
    """mean over tokens, or cls"""
    max_length: Int = Field(default=128, ge=8, le=512)
    """texts are truncated to this many tokens"""
    adapter: Literal["lora", "adalora", "ia3", "full", "frozen"] = "lora"
    """lora, adalora, ia3 (PEFT), full fine-tuning, or frozen"""
    lora_r: Int = Field(default=8, ge=1)
    """LoRA (and AdaLoRA) rank"""
    lora_alpha: Int = 16
    """LoRA (and AdaLoRA) scale"""
    lora_dropout: Share = 0.1
    """LoRA (and AdaLoRA) dropout"""
    target_modules: Names = ("query", "value")
    """module names the adapter wraps (BERT: query, key, value, dense)"""
    top_layers: Int = Field(default=3, ge=0)
    """adapt only the top N layers (0: all): back-propagation stops below them, about half the step
    time with 3 of MiniLM's 6"""


@dataclass(frozen=True, config=SECTION)
class ModelConfig:
    """The classifier: which branches it reads and their sizes.

    The label counts (``counts``) see the whole KG around the linked entities, where the GNN
    sees a capped subgraph. ``counts_head: per_label`` scores each class from its own count
    columns (one per count block) and its share of each block's total, with a linear map of the
    layer-normed counts for the cross-class evidence: sharing the MLP across classes lets a rare
    class use what the relations taught on the frequent ones. ``graph_encoder: paths`` is
    fusion/path_encoder.py (needs a label map and an in-memory KG); ``none`` is the ablation
    that shows what the encoder adds.
    """

    mode: Literal["text", "graph", "fused", "counter"] = "fused"
    """text, graph, fused (text + counts + gated graph) or counter"""
    hidden: Int = Field(default=128, ge=4)
    """graph node state size"""
    gnn_layers: Int = Field(default=2, ge=2)
    """message-passing rounds"""
    num_bases: Int = 8
    """RGCN basis matrices"""
    dropout: Share = 0.1
    """in the graph encoder and heads"""
    counts: Bool = True
    """fused mode: the logits also read the parameter-free label counts that subgraph.counts names"""
    counts_head: Literal["concat", "per_label"] = "per_label"
    """how a fused model reads the counts: per_label (one MLP shared by the classes scores each
    class from its own counts) or concat (appended to the text vector)"""
    counts_hidden: Int = Field(default=32, ge=1)
    """the per-label MLP's hidden size"""
    graph_encoder: Literal["rgcn", "paths", "none"] = "rgcn"
    """rgcn (a relational GNN over the capped neighbourhood), paths (label-conditioned path
    reasoning; needs kg.label_map and kg.files) or none (fused reads the text and the counts
    only)"""

    @model_validator(mode="after")
    def _has_something_to_read(self) -> ModelConfig:
        if self.graph_encoder == "none" and self.mode == "graph":
            raise ValueError("graph_encoder none leaves graph mode nothing to read: choose rgcn")
        if self.graph_encoder == "none" and self.mode == "fused" and not self.counts:
            raise ValueError(
                "graph_encoder none with counts false is the text model: set mode text, "
                "or turn counts on"
            )
        return self

    @property
    def reads_counts(self) -> bool:
        """Counter mode, or fused with ``counts``; other modes never read them, so that
        `kgfuse compare` (which swaps only the mode) keeps its text control text-only."""
        return self.mode == "counter" or (self.mode == "fused" and self.counts)

    @property
    def reads_graph(self) -> bool:
        """Whether the model reads the batch's subgraphs (graph or fused, with an encoder)."""
        return self.mode == "graph" or (self.mode == "fused" and self.graph_encoder != "none")

    @property
    def reads_walks(self) -> bool:
        """Whether the model reads walk subgraphs (the paths encoder, fusion/path_graph.py)."""
        return self.reads_graph and self.graph_encoder == "paths"

    @property
    def counts_per_label(self) -> bool:
        """Whether the counts go to `PerLabelCounts` rather than into the text head."""
        return self.mode == "fused" and self.counts and self.counts_head == "per_label"


@dataclass(frozen=True, config=SECTION)
class TrainSettings:
    """The optimisation, the regularisers and self-training. Why some of them exist:

    - ``mask_label_facts``: below 1.0 the model also learns to use a known fact, as a text about
      a seen entity can at test time; above 0, val:unseen texts are masked too, as stand-ins for
      new entities (fusion/examples.py; ``auto`` is chosen by fusion/auto.py).
    - ``mask_mentions``: the text branch cannot memorise a name and has to use the graph, as for
      a name it has never seen.
    - ``probe_init``: a random text head is still learning when training stops, and tuning the
      encoder under it distorts the features that carry over to unseen entities; but a text head
      that starts converged wins the competition with the KG branches where the KG carries the
      signal (fusion/probe.py).
    - ``branch_loss``: without it the text branch, which can memorise a training text's names,
      fits the training set first and the KG branches stop learning (modality competition, Wang
      et al., CVPR 2020, "What makes training multi-modal classification networks hard?").
    - ``swap_mentions``: for texts whose class is a function of one entity they mention
      (fusion/augment.py). ``adversarial``: FGM (Miyato et al., ICLR 2017), along the gradient.
    - ``self_training_rounds``: each round labels ``data.unlabeled`` with the calibrated model,
      keeps the pseudo-labels at or above ``self_training_threshold`` and trains on; a round that
      lowers the validation score is undone and ends them (fusion/self_training.py).
    - ``patience``: counted on val:unseen (see `fusion.selection`); a tie goes to the lower
      validation loss.
    """

    epochs: Int = Field(default=5, ge=1)
    """passes over the training set (early stopping may end sooner)"""
    batch_size: Int = Field(default=16, ge=1)
    """texts per step"""
    lr: Number = Field(default=1e-3, gt=0.0)
    """learning rate of the graph encoder and heads"""
    lora_lr: Number = Field(default=5e-4, gt=0.0)
    """learning rate of the encoder's adapter"""
    weight_decay: Number = 0.01
    """AdamW weight decay"""
    warmup: Share = 0.1
    """share of the steps of linear warm-up"""
    clip: Number = 1.0
    """max gradient norm (0 = off)"""
    class_weights: Bool = False
    """weight the loss by inverse class frequency"""
    patience: Int = Field(default=2, ge=1)
    """epochs without a better validation score (val:unseen accuracy, then loss) before stopping"""
    seed: Int = 0
    """of everything: the validation split, data order, dropout, initialisation"""
    mask_label_facts: AutoRate = None
    """share of training texts whose own entity-label facts are hidden (1.0 forces reasoning over
    neighbours); auto: 1.0 when the KG's label facts restate the training labels, else 0"""
    mask_mentions: Rate = 0.0
    """share of training texts whose linked names are masked, drawn anew each epoch, so the text
    branch cannot memorise a name"""
    probe_init: AutoSwitch = None
    """start the text head from a logistic regression on what it reads: the frozen encoder's text
    vectors (with counts_head concat, the label counts too), its C chosen on validation (linear
    probe, then fine-tune); auto: for text-only models, and where the KG's label paths do not
    lift the reference on validation by more than one standard error"""
    branch_loss: Number = Field(default=1.0, ge=0.0)
    """weight of a fused model's per-branch losses (counts and graph logits each scored on their
    own), against modality competition; 0 = off"""
    swap_mentions: Rate = 0.0
    """share of the qualifying training texts copied about another entity of the same type, labelled
    with its class; 0 = off"""
    adversarial: Number = Field(default=0.0, ge=0.0)
    """L2 norm per text of FGM's word-embedding perturbation; 0 = off (one more forward and backward
    pass per step)"""
    self_training_rounds: Int = Field(default=0, ge=0)
    """rounds of self-training on data.unlabeled; 0 = off"""
    self_training_threshold: Number = Field(default=0.9, gt=0.0, le=1.0)
    """the calibrated probability a pseudo-label needs"""
    threads: Int = Field(default=0, ge=0)
    """torch CPU threads (0 = torch's default)"""
    tracker: TrackerName = "none"
    """also send the config, metrics per epoch, final metrics and the bundle to an experiment
    tracker, as local files under the run folder (fusion/trackers.py); train.tensorboard=true is
    read as tensorboard"""
    tracker_uri: Text = ""
    """mlflow only: a tracking server or store URI (default: sqlite:///OUTPUT/mlflow/mlflow.db)"""
    tracker_project: Text = "kgfuse"
    """the MLflow experiment or W&B project the run goes in"""

    @model_validator(mode="before")
    @classmethod
    def _tensorboard_is_a_tracker(cls, data: Any) -> Any:
        """``train.tensorboard`` (before train.tracker): ``true`` reads as
        ``tracker: tensorboard``; ``false`` is dropped. Older configs and bundles keep it."""
        if not isinstance(data, dict) or "tensorboard" not in data:
            return data
        data = dict(data)
        on = data.pop("tensorboard")
        if on not in (True, False):
            raise ValueError(
                f"train.tensorboard must be true or false (got {on!r}); it is the old spelling "
                "of train.tracker=tensorboard"
            )
        if on:
            if data.get("tracker", "none") not in ("none", "tensorboard"):
                raise ValueError(
                    f"train.tensorboard=true (the old spelling of train.tracker=tensorboard) "
                    f"contradicts train.tracker={data['tracker']}: drop train.tensorboard"
                )
            data["tracker"] = "tensorboard"
        return data

    @model_validator(mode="after")
    def _uri_is_for_mlflow(self) -> TrainSettings:
        if self.tracker_uri and self.tracker != "mlflow":
            raise ValueError(
                f"train.tracker_uri is for train.tracker=mlflow (got train.tracker="
                f"{self.tracker}); wandb runs offline (upload later with wandb sync) and "
                "tensorboard writes OUTPUT/tensorboard"
            )
        return self


@dataclass(frozen=True, config=SECTION)
class RunConfig:
    """A training run: every section, and where its bundle goes."""

    kg: KGSource = Field(default_factory=lambda: KGSource())
    """the knowledge graph"""
    data: DataConfig = Field(default_factory=lambda: DataConfig())
    """the labelled texts"""
    linker: LinkerConfig = Field(default_factory=lambda: LinkerConfig())
    """entity linking"""
    subgraph: SubgraphSettings = Field(default_factory=lambda: SubgraphSettings())
    """each text's subgraph and label counts"""
    encoder: EncoderConfig = Field(default_factory=lambda: EncoderConfig())
    """the text encoder"""
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    """the classifier"""
    train: TrainSettings = Field(default_factory=lambda: TrainSettings())
    """training"""
    output: Text = "runs/model"
    """the run folder (the bundle goes in OUTPUT/bundle)"""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (lists, not tuples): what a bundle stores."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
