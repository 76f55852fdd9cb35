"""`kgfuse export --onnx`: the encoder on ONNX Runtime answers like the PyTorch bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fusion.bundle import load_bundle
from fusion.encoder import EncoderError
from fusion.predict import Predictor

from .conftest import run_cli

TEXTS = ["a bad case of influenza", "my joint pain and a skin rash", "sneezing, a runny nose"] * 4


def test_onnx_export_predicts_what_the_pytorch_bundle_predicts(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "onnx"
    result = run_cli("export", str(tiny_bundle), "-o", str(out), "--onnx")
    assert result.returncode == 0, result.stderr
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["encoder_runtime"] == "onnx" and "encoder.onnx" in meta["files"]
    model, _, _ = load_bundle(out)
    assert type(model.text_encoder.model).__name__ == "OnnxTransformer"  # type: ignore[union-attr]

    merged = run_cli("export", str(tiny_bundle), "-o", str(tmp_path / "merged"))  # same weights
    assert merged.returncode == 0, merged.stderr
    expected = Predictor.from_dir(tmp_path / "merged").predict(TEXTS)
    got = Predictor.from_dir(out).predict(TEXTS)  # 12 texts: length-bucketed chunks of 8
    for e, g in zip(expected, got, strict=True):
        assert g.label == e.label
        assert g.probabilities == pytest.approx(e.probabilities, abs=1e-4)


def test_onnx_export_refuses_int8_together_with_onnx(tiny_bundle: Path, tmp_path: Path) -> None:
    both = run_cli("export", str(tiny_bundle), "-o", str(tmp_path / "x"), "--onnx", "--int8")
    assert both.returncode == 1 and "choose one" in both.stderr and "Traceback" not in both.stderr
    assert not (tmp_path / "x").exists()


def test_onnx_bundle_without_onnxruntime_names_the_pip_command(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fusion.export import export_bundle

    out = export_bundle(tiny_bundle, tmp_path / "onnx", onnx=True)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(EncoderError, match=r"`pip install onnxruntime onnx`"):
        load_bundle(out)
