"""The model bundle: one folder with everything needed to serve a trained model.

    bundle.json            format version, labels, the resolved config, library versions,
                           KG fingerprint, encoder id, metrics, linker settings
    model.safetensors      graph encoder and heads (every trainable tensor outside the encoder)
    adapter/               the encoder's PEFT adapter (``save_pretrained``), if one is used
    encoder/               the whole encoder, for full fine-tuning or a merged export (pruned
                           by `kgfuse export --prune`: bundle.json's ``prune`` has its shape)
    kg/                    the compiled KG, or a reference to the triple store holding it
                           (``store.json`` + the linker's names, kg/store_graph.py)
    kg/linker/             the linker's index for a compiled KG (nlp/linker_index.py): loading
                           reads it instead of building it
    aliases.tsv            the linker's alias table, if it has one (nlp/alias_table.py)
    node_features.safetensors   the frozen entity-text vectors that training, validation and
                           test touched, keyed by the SHA-256 of the text (fusion/features.py);
                           an entity first met while serving is embedded then

``bundle.json`` lists the SHA-256 of every other file (``files``, fusion/manifest.py); loading
checks them first, so a corrupted or half-copied bundle is refused, naming the file. No pickle anywhere; loading runs no code from the bundle. Written atomically. The linker is
rebuilt from ``kg/`` and the stored linker settings (a second copy of the KG in a spaCy folder
would only double the bundle).
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spacy.language import Language

from fusion.config import ConfigError, EncoderConfig, RunConfig, config_from_dict
from fusion.encoder import TextEncoder, encoder_id
from fusion.features import SERVE_EXTRA_VECTORS, FeatureTable, NodeFeatures, encoder_key
from fusion.manifest import build_manifest, first_mismatch, is_manifest
from fusion.model import FusionClassifier
from fusion.path_graph import walk_length
from fusion.resources import Resources
from kg.errors import KGFuseError
from kg.files import as_path, atomic_directory, refuse_foreign_folder
from kg.protocol import Graph
from kg.storage import META_FILE as KG_META_FILE
from kg.storage import read_versioned_json
from kg.store_graph import open_saved_graph
from nlp.linker import ALIAS_FILE, from_kg
from nlp.linker_index import FORMAT as INDEX_FORMAT
from nlp.linker_index import META as INDEX_META
from nlp.linker_index import save_index

FORMAT = "kgfuse-bundle"
FORMAT_VERSION = 3  # 2: temperature and the label-path sequences; 3: touched node features only
LINKER_INDEX = (
    "kg/linker"  # the linker's index, stored with the KG it indexes (nlp/linker_index.py)
)
BUNDLE_FILE = "bundle.json"
REQUIRED = (BUNDLE_FILE, "model.safetensors", "node_features.safetensors", "kg")


class BundleError(KGFuseError):
    """A bundle folder is missing, incomplete, corrupt or of another version."""


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("kgfuse", "torch", "transformers", "peft", "torch-geometric", "spacy", "rdflib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _head_state(model: FusionClassifier) -> dict[str, torch.Tensor]:
    """Every tensor outside the text encoder (which is saved with ``save_pretrained``)."""
    return {
        name: p.detach().contiguous()
        for name, p in model.named_parameters()
        if not name.startswith("text_encoder.")
    }


def save_bundle(
    folder: str | Path,
    model: FusionClassifier,
    resources: Resources,
    config: RunConfig,
    metrics: dict[str, Any],
    training: dict[str, Any],
    merged: bool = False,
    prune: dict[str, Any] | None = None,
) -> Path:
    """Write the bundle atomically. ``merged``: the encoder is saved whole under ``encoder/``;
    ``prune``: it is pruned to this plan (`fusion.prune.PrunePlan.to_dict`).

    Raises:
        OutputError: ``folder`` holds files but no bundle (they would be replaced)."""
    refuse_foreign_folder(folder, (BUNDLE_FILE,), "a model bundle")
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file

    folder = Path(folder)
    heads = _head_state(model)
    adapter = config.encoder.adapter
    table = resources.alias_table
    linker = dict(resources.linker_config)
    if table is not None:
        linker["aliases"] = ALIAS_FILE  # the copy inside the bundle
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "labels": resources.labels,
        "label_nodes": [resources.graph.iri(e) for e in resources.label_nodes],
        "config": config.to_dict(),
        "linker": linker,
        "kg_fingerprint": resources.graph.fingerprint,
        "encoder_id": encoder_id(resources.text_encoder.path),
        "encoder_storage": "encoder"
        if merged or adapter == "full"
        else ("adapter" if adapter in ("lora", "adalora", "ia3") else "base"),
        "metrics": metrics,
        "training": training,
        "temperature": float(training.get("temperature", 1.0)),
        "path_sequences": [list(seq) for seq in resources.path_sequences],
        "versions": _versions(),
    }
    if prune is not None:
        meta["prune"] = prune
    with atomic_directory(folder) as tmp:
        save_file(heads or {"_empty": torch.zeros(0)}, str(tmp / "model.safetensors"))
        digests, vectors = resources.features.touched()
        save_numpy(
            {"digests": digests, "features": vectors},
            str(tmp / "node_features.safetensors"),
            metadata={"encoder": encoder_key(resources.text_encoder)},
        )
        resources.graph.save(tmp / "kg")
        if resources.graph.compiled is not None:  # a store's linker reads names only
            save_index(resources.nlp, tmp / LINKER_INDEX)
        if table is not None:
            table.save(tmp / ALIAS_FILE)
        if model.text_encoder is not None:
            inner = model.text_encoder.model
            if meta["encoder_storage"] == "adapter":
                inner.save_pretrained(tmp / "adapter")
            elif meta["encoder_storage"] == "encoder":
                inner.save_pretrained(tmp / "encoder")
                resources.text_encoder.tokenizer.save_pretrained(tmp / "encoder")
        meta["files"] = build_manifest(tmp)
        (tmp / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return folder


def _index_fits(index: Path, graph: Graph) -> bool:
    """Whether the bundle's linker index was written for ``graph`` by this kgfuse: then the
    linker loads it instead of building (seconds instead of minutes on a large KG). One that
    does not fit is left alone (the linker is built in memory): a bundle is never rewritten."""
    try:
        meta = json.loads((index / INDEX_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        graph.compiled is not None
        and isinstance(meta, dict)
        and meta.get("format") == INDEX_FORMAT
        and meta.get("kg_fingerprint") == graph.fingerprint
    )


def _other_folder(folder: Path) -> str | None:
    """What to pass instead when ``folder`` is a training run's folder or a compiled KG (a
    bundle's own ``kg/`` among them), not a bundle."""
    if (folder / "bundle" / BUNDLE_FILE).is_file():
        return (
            f"{folder} is a training run's folder, not a model bundle; its bundle is "
            f"{folder / 'bundle'}: pass that"
        )
    if not (folder / KG_META_FILE).is_file():
        return None
    if (folder.parent / BUNDLE_FILE).is_file():
        return f"{folder} is the KG inside the bundle {folder.parent}: pass {folder.parent}"
    return (
        f"{folder} is a compiled KG, not a model bundle; pass the folder `kgfuse train` "
        "writes (OUTPUT/bundle), or train one with `kgfuse train CONFIG`"
    )


def read_meta(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"no model bundle at {folder}; train one with `kgfuse train CONFIG`")
    if not (folder / BUNDLE_FILE).exists() and (other := _other_folder(folder)):
        raise BundleError(other)
    for name in REQUIRED:
        if not (folder / name).exists():
            raise BundleError(
                f"{folder} is not a complete bundle: {name} is missing; train or export it again"
            )
    fix = "train it again with `kgfuse train CONFIG`"
    return read_versioned_json(
        folder / "bundle.json", FORMAT, FORMAT_VERSION, "bundle", fix, error=BundleError
    )


def verify_bundle(
    folder: str | Path, meta: dict[str, Any], allow_unchecked: bool = False
) -> dict[str, str]:
    """Check every file of a bundle against the SHA-256 manifest in its ``bundle.json``.

    Args:
        folder: the bundle.
        meta: its ``bundle.json`` (`read_meta`).
        allow_unchecked: accept a bundle whose ``bundle.json`` has no manifest (written before
            bundles carried one); `kgfuse export` reads such a bundle to write a checked one.

    Returns:
        The manifest that was checked (empty for an unchecked bundle).

    Raises:
        BundleError: naming the first missing or changed file and the fix, or a missing or
            malformed manifest.
    """
    folder = Path(folder)
    manifest = meta.get("files")
    if manifest is None and allow_unchecked:
        return {}
    if manifest is None:
        raise BundleError(
            f"{folder / 'bundle.json'} lists no file checksums (the bundle predates them), so "
            f"its files cannot be checked; write a checked copy with `kgfuse export {folder} "
            "-o NEW`, or train it again"
        )
    if not is_manifest(manifest):
        raise BundleError(
            f"{folder / 'bundle.json'}: 'files' is not a map of relative paths to SHA-256 "
            "digests (corrupt?); train or export the bundle again"
        )
    bad = first_mismatch(folder, manifest)
    if bad is None:
        return dict(manifest)
    what = {
        "missing": f"{folder} holds no {bad.path}, which bundle.json lists",
        "changed": f"{folder / bad.path} does not match its SHA-256 in bundle.json (corrupt or "
        "modified)",
    }.get(bad.problem, f"{folder / bad.path} is {bad.problem}")
    raise BundleError(f"{what}; copy the bundle again from its source, or train or export it again")


def load_bundle(
    folder: str | Path, kg_source: str | None = None, allow_unchecked: bool = False
) -> tuple[FusionClassifier, Resources, dict[str, Any]]:
    """Rebuild the model and its resources from a bundle; the model is in eval mode.

    Every file is first checked against the bundle's SHA-256 manifest (`verify_bundle`).

    Args:
        folder: the bundle.
        kg_source: for a bundle whose KG lives in a triple store, another endpoint URL or store
            folder with the same triples (a replica, a moved store).
        allow_unchecked: also load a bundle without a manifest (see `verify_bundle`).

    Raises:
        BundleError: a missing, incomplete, corrupt or modified bundle, naming the file.
        TypeError: ``folder`` is not a path."""
    folder = as_path(folder, "the bundle folder")
    meta = read_meta(folder)
    verify_bundle(folder, meta, allow_unchecked)
    try:
        config = config_from_dict(meta["config"], str(folder / "bundle.json"))
    except ConfigError as e:
        raise BundleError(str(e)) from e
    graph = open_saved_graph(folder / "kg", kg_source)
    weights = _read_weights(folder)
    stored = _Stored(folder, meta, replace(config, encoder=_encoder_config(folder, meta, config)))
    resources = _load_resources(stored, graph, weights)
    model = _load_model(stored, resources, weights.heads)
    return _with_runtime(model, stored), resources, meta


@dataclass
class _Stored:
    """A bundle's folder and what its bundle.json says."""

    folder: Path
    meta: dict[str, Any]
    config: RunConfig  # the encoder settings as loading uses them (`_encoder_config`)


@dataclass
class _Weights:
    """What a bundle's safetensors files hold."""

    digests: np.ndarray  # (n, 32) uint8: the SHA-256 of each node text with a stored vector
    vectors: np.ndarray  # (n, hidden): its frozen encoder vector
    heads: dict[str, torch.Tensor]  # every trainable tensor outside the encoder


def build_classifier(
    config: RunConfig, resources: Resources, encoder: TextEncoder | None
) -> FusionClassifier:
    """The classifier ``config.model`` describes over ``resources``, with ``encoder`` for its
    text branch (None in graph mode): training builds it to train, loading to fill in."""
    return FusionClassifier(
        config.model,
        encoder,
        resources.features,
        2 * resources.graph.num_relations,
        len(resources.labels),
        resources.text_encoder.hidden_size,
        uses_label_nodes=bool(resources.label_nodes),
        counter_dim=resources.counter.dims if resources.counter is not None else 0,
        path_rounds=walk_length(resources.subgraph.hops or 1),
    )


def _read_weights(folder: Path) -> _Weights:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file as load_numpy
    from safetensors.torch import load_file

    try:
        stored = load_numpy(str(folder / "node_features.safetensors"))
        digests, vectors = stored["digests"], stored["features"]
        heads = load_file(str(folder / "model.safetensors"))
    except (SafetensorError, OSError, KeyError) as e:
        raise BundleError(f"{folder}: corrupt weights ({e}); train or export it again") from e
    return _Weights(digests, vectors, heads)


def _encoder_config(folder: Path, meta: dict[str, Any], config: RunConfig) -> EncoderConfig:
    """The encoder settings to load with: a bundle that stores the whole encoder (a full
    fine-tune, a merged export) loads it from ``encoder/``, frozen."""
    if meta.get("encoder_storage", "base") != "encoder":
        return config.encoder
    return type(config.encoder)(
        **{**config.encoder.__dict__, "path": str(folder / "encoder"), "adapter": "frozen"}
    )


def _linker_settings(folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The stored linker settings, the alias table's name resolved inside the bundle."""
    linker = dict(meta.get("linker", {}))
    if linker.get("aliases"):
        if linker["aliases"] != ALIAS_FILE or not (folder / ALIAS_FILE).is_file():
            raise BundleError(
                f"{folder}: bundle.json names the alias table {linker['aliases']!r}, but the "
                f"bundle holds no {ALIAS_FILE}; train or export it again"
            )
        linker["aliases"] = str(folder / ALIAS_FILE)
    return linker


def load_linker(
    folder: Path, meta: dict[str, Any], graph: Graph
) -> tuple[dict[str, Any], Language]:
    """The bundle's linker settings and the linker they make over ``graph``: it reads the
    bundle's stored index when that still fits the KG, else builds one."""
    linker = _linker_settings(folder, meta)
    index = folder / LINKER_INDEX
    if _index_fits(index, graph):
        return linker, from_kg(graph, **linker, index=str(index))
    return linker, from_kg(graph, **linker)


def _load_resources(stored: _Stored, graph: Graph, weights: _Weights) -> Resources:
    """The KG, linker, label nodes and node features the model reads, as trained; the linker
    reads its stored index when it still fits the KG, else builds one."""
    folder, meta, config = stored.folder, stored.meta, stored.config
    linker, nlp = load_linker(folder, meta, graph)
    text_encoder = _text_encoder(stored)
    digests, vectors = weights.digests, weights.vectors
    if (
        digests.ndim != 2
        or digests.shape[1] != 32
        or vectors.shape != (len(digests), text_encoder.hidden_size)
    ):
        raise BundleError(
            f"{folder / 'node_features.safetensors'} holds vectors of shape {vectors.shape} for "
            f"{digests.shape} keys; its encoder makes {text_encoder.hidden_size}: train it again"
        )
    table = FeatureTable(
        text_encoder.hidden_size,
        text_encoder.embed,
        pinned=(digests, vectors),
        extra_limit=SERVE_EXTRA_VECTORS,
    )
    resources = Resources(
        graph,
        list(meta["labels"]),
        [graph.entity_id(i) for i in meta["label_nodes"]],
        config.encoder,
        config.subgraph,
        linker,
        features=NodeFeatures(graph, table),
        nlp=nlp,
        text_encoder=text_encoder,
        path_sequences=[tuple(seq) for seq in meta.get("path_sequences", [])],
        walks=config.model.reads_walks,
    )
    storage = meta.get("encoder_storage", "base")
    if storage not in ("encoder", "base") and encoder_id(resources.text_encoder.path) != meta.get(
        "encoder_id"
    ):
        raise BundleError(
            f"the base encoder at {resources.text_encoder.path} differs from the one this bundle was trained on"
        )
    return resources


def _text_encoder(stored: _Stored) -> TextEncoder:
    """The bundle's text encoder, frozen; a pruned one rebuilt to its plan's shape first."""
    plan = stored.meta.get("prune")
    if plan is None:
        return TextEncoder(stored.config.encoder, adapt=False)
    from fusion.prune import PruneError, load_pruned

    try:
        loaded = load_pruned(stored.folder / "encoder", plan)
    except PruneError as e:
        raise BundleError(str(e)) from e
    return TextEncoder(stored.config.encoder, adapt=False, loaded=loaded)


def _load_model(
    stored: _Stored, resources: Resources, heads: dict[str, torch.Tensor]
) -> FusionClassifier:
    """The classifier as trained (its encoder with the stored adapter), frozen, in eval mode."""
    folder, meta, config = stored.folder, stored.meta, stored.config
    encoder = None
    if config.model.mode != "graph":
        encoder = _text_encoder(stored)
        if meta.get("encoder_storage", "base") == "adapter":
            from peft import PeftModel

            encoder.model = PeftModel.from_pretrained(
                encoder.model, folder / "adapter", is_trainable=False
            )
    model = build_classifier(config, resources, encoder)
    heads.pop("_empty", None)
    expected = {n for n, _ in model.named_parameters() if not n.startswith("text_encoder.")}
    if set(heads) != expected:
        raise BundleError(
            f"{folder / 'model.safetensors'} does not fit the model in bundle.json: missing "
            f"{sorted(expected - set(heads))[:5]}, unexpected {sorted(set(heads) - expected)[:5]}"
        )
    model.load_state_dict(heads, strict=False)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return model


def _with_runtime(model: FusionClassifier, stored: _Stored) -> FusionClassifier:
    """The model on the runtime an export chose: the ONNX encoder (`kgfuse export --onnx`),
    int8 linear layers (`kgfuse export --int8`)."""
    folder, meta = stored.folder, stored.meta
    if meta.get("encoder_runtime") == "onnx" and model.text_encoder is not None:
        from fusion.onnx_encoder import ONNX_FILE, use_onnx

        use_onnx(model.text_encoder, folder / ONNX_FILE)
    if meta.get("quantize") == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model
