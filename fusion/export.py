"""``kgfuse export``: a serving bundle with LoRA merged into the encoder, optionally int8.

Merging folds the adapter into the base weights (``merge_and_unload``): the same predictions
without the adapter's extra matrix products, and a bundle that no longer needs the base model.
``int8`` marks the bundle for dynamic int8 quantization of its Linear layers at load time
(PyTorch's ``quantize_dynamic``; packed int8 weights have no safetensors form, so the bundle
keeps float weights and quantizes when it loads). ``onnx`` also writes the merged encoder as
``encoder.onnx`` and marks the bundle to run it on ONNX Runtime (fusion/onnx_encoder.py).
``prune`` removes whole attention heads and FFN rows of the merged encoder (fusion/prune.py):
smaller tensors on disk and fewer operations; it combines with ``int8`` and with ``onnx``. With
``data``, both bundles are evaluated and timed on it so the accuracy change and the speed-up are
reported, not assumed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fusion.bundle import BUNDLE_FILE, BundleError, load_bundle, save_bundle
from fusion.config import config_from_dict
from fusion.manifest import build_manifest
from fusion.onnx_encoder import ONNX_FILE, export_onnx, require
from fusion.prune import activation_scores, apply_plan, check_fraction, plan_pruning
from kg.files import refuse_foreign_folder, write_text


def export_bundle(
    source: str | Path,
    target: str | Path,
    int8: bool = False,
    onnx: bool = False,
    prune: tuple[float, float] | None = None,
    prune_texts: list[str] | None = None,
) -> Path:
    """Write ``target``: ``source`` with LoRA merged into the encoder, and its file checksums.

    ``source`` is checked against its manifest when it has one; a bundle written before bundles
    carried checksums is read as it is, so exporting it is how it gets them.

    Args:
        prune: (heads, ffn): remove these fractions of each encoder layer's attention heads and
            FFN rows after merging (`fusion.prune.plan_pruning`); None keeps them all.
        prune_texts: score heads and rows by what they write on these texts
            (`fusion.prune.activation_scores`) instead of by their weights.

    Raises:
        BundleError: ``target`` is ``source``; both ``int8`` and ``onnx``; ``onnx`` or ``prune``
            for a graph-only model (it has no text encoder).
        PruneError: a pruning fraction outside [0, 1), or an encoder that is not BERT-style.
        EncoderError: ``onnx`` without the onnx package installed (naming the pip command).
    """
    source, target = Path(source), Path(target)
    if source.resolve() == target.resolve():
        raise BundleError(
            "export writes a new bundle: choose an output folder other than the source"
        )
    refuse_foreign_folder(target, (BUNDLE_FILE,), "a model bundle")  # before any work
    if int8 and onnx:
        raise BundleError("--int8 quantizes the PyTorch encoder and --onnx replaces it: choose one")
    if prune is not None:  # before anything is read or written
        prune = (check_fraction(prune[0], "--prune-heads"), check_fraction(prune[1], "--prune-ffn"))
    if onnx:
        require("onnx")  # before anything is written
    model, resources, meta = load_bundle(source, allow_unchecked=True)
    if (onnx or prune) and model.text_encoder is None:
        what = "export to ONNX" if onnx else "prune"
        raise BundleError(f"{source} is a graph-only model: it has no text encoder to {what}")
    if "prune" in meta and prune is not None:
        raise BundleError(f"{source} is pruned already: export its unpruned source with --prune")
    if model.text_encoder is not None and meta.get("encoder_storage") == "adapter":
        model.text_encoder.model = model.text_encoder.model.merge_and_unload()
    plan = meta.get("prune")  # a pruned source stays pruned
    if prune is not None:
        assert model.text_encoder is not None  # checked above
        scores = None
        if prune_texts is not None:
            rule = f"activations on {len(prune_texts)} texts"
            scores = (activation_scores(model.text_encoder, prune_texts), rule)
        pruned = plan_pruning(model.text_encoder.model, *prune, scores=scores)
        apply_plan(model.text_encoder.model, pruned)
        plan = pruned.to_dict()
    config = config_from_dict(meta["config"], str(source / "bundle.json"))
    save_bundle(
        target,
        model,
        resources,
        config,
        meta.get("metrics", {}),
        meta.get("training", {}),
        merged=model.text_encoder is not None,
        prune=plan,
    )
    if int8:
        _mark(target, quantize="int8")
    if onnx:
        assert model.text_encoder is not None  # checked above
        export_onnx(model.text_encoder, target / ONNX_FILE)
        _mark(target, encoder_runtime="onnx", files=build_manifest(target))
    return target


def _mark(target: Path, **keys: Any) -> None:
    """Add ``keys`` to ``target``'s bundle.json (written whole, then renamed into place)."""
    path = target / "bundle.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(keys)
    write_text(path, json.dumps(data, indent=2) + "\n")


def measure(
    bundle: str | Path,
    data: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    allow_unchecked: bool = False,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and prediction time (texts/s, one process) of a bundle on a file.

    ``allow_unchecked``: also measure a bundle without checksums (an export's source)."""
    from fusion.evaluate import evaluate

    model, resources, _ = load_bundle(bundle, allow_unchecked=allow_unchecked)
    prepared = resources.prepare_file(data, text_column, label_column)
    started = time.perf_counter()
    metrics = evaluate(model, resources, prepared)
    seconds = time.perf_counter() - started
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "texts_per_s": len(prepared) / seconds,
    }
