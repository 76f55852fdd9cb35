"""`kgfuse export --prune`: heads and FFN rows removed from the merged encoder, for real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fusion.bundle import BundleError, load_bundle
from fusion.export import export_bundle
from fusion.predict import Predictor
from fusion.prune import (
    PruneError,
    activation_scores,
    apply_plan,
    encoder_layers,
    plan_pruning,
)

from .conftest import REPO, run_cli_in_process

TEXTS = ["a bad case of influenza", "my joint pain and a skin rash", "sneezing, a runny nose"] * 4
# the tiny BERT: 2 layers of 4 heads (8 dimensions each) and 37 FFN rows; halving keeps 2 and 19
HEADS, ROWS = 2, 37 - int(0.5 * 37)


@pytest.fixture(scope="module")
def exports(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("prune")
    return {
        "merged": export_bundle(tiny_bundle, out / "merged"),
        "pruned": export_bundle(tiny_bundle, out / "pruned", prune=(0.5, 0.5)),
    }


def _encoder_bytes(bundle: Path) -> int:
    return (bundle / "encoder" / "model.safetensors").stat().st_size


def test_prune_bundle_is_smaller_and_keeps_the_planned_heads_and_rows(
    exports: dict[str, Path],
) -> None:
    assert _encoder_bytes(exports["pruned"]) < 0.9 * _encoder_bytes(exports["merged"])
    meta = json.loads((exports["pruned"] / "bundle.json").read_text())
    layers = meta["prune"]["layers"]
    assert [(len(p["heads"]), p["ffn_rows"]) for p in layers] == [(HEADS, ROWS)] * 2
    model, resources, _ = load_bundle(exports["pruned"])
    assert model.text_encoder is not None
    for encoder in (model.text_encoder.model, resources.text_encoder.model):
        for layer in encoder_layers(encoder):
            assert layer.attention.self.query.weight.shape == (HEADS * 8, 32)
            assert layer.attention.output.dense.weight.shape == (32, HEADS * 8)
            assert layer.intermediate.dense.weight.shape == (ROWS, 32)
            assert layer.output.dense.weight.shape == (32, ROWS)


def test_prune_bundle_verifies_and_predicts_from_the_cli(
    exports: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = str(exports["pruned"])
    assert run_cli_in_process(monkeypatch, "bundle", "verify", bundle) == 0
    capsys.readouterr()
    assert run_cli_in_process(monkeypatch, "predict", bundle, TEXTS[0], "--json") == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["label"]


def test_prune_bundle_serves_over_http(exports: dict[str, Path]) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import ServeSettings

    expected = Predictor.from_dir(exports["pruned"]).predict(TEXTS[:2])
    with TestClient(create_app(ServeSettings(bundle=exports["pruned"]))) as client:
        r = client.post("/v1/predict", json={"texts": TEXTS[:2]})
    assert r.status_code == 200, r.text
    assert [p["label"] for p in r.json()["predictions"]] == [e.label for e in expected]


def test_prune_bundle_predicts_what_its_in_memory_pruned_model_predicts(
    exports: dict[str, Path],
) -> None:
    model, resources, meta = load_bundle(exports["merged"])
    assert model.text_encoder is not None
    plan = plan_pruning(model.text_encoder.model, 0.5, 0.5)
    assert plan.to_dict() == json.loads((exports["pruned"] / "bundle.json").read_text())["prune"]
    apply_plan(model.text_encoder.model, plan)
    apply_plan(resources.text_encoder.model, plan)  # loading embeds new entities with it too
    expected = Predictor(model, resources, meta).predict(TEXTS)
    got = Predictor.from_dir(exports["pruned"]).predict(TEXTS)
    for e, g in zip(expected, got, strict=True):
        assert g.label == e.label
        assert g.probabilities == pytest.approx(e.probabilities, abs=1e-5)


def test_prune_zero_fractions_predict_what_the_merged_export_predicts(
    tiny_bundle: Path, exports: dict[str, Path], tmp_path: Path
) -> None:
    zero = export_bundle(tiny_bundle, tmp_path / "zero", prune=(0.0, 0.0))
    assert _encoder_bytes(zero) == _encoder_bytes(exports["merged"])
    expected = Predictor.from_dir(exports["merged"]).predict(TEXTS)
    got = Predictor.from_dir(zero).predict(TEXTS)
    for e, g in zip(expected, got, strict=True):
        assert g.label == e.label
        assert g.probabilities == pytest.approx(e.probabilities, abs=1e-5)


def test_prune_with_int8_loads_quantized_and_pruned(tiny_bundle: Path, tmp_path: Path) -> None:
    out = export_bundle(tiny_bundle, tmp_path / "both", int8=True, prune=(0.5, 0.5))
    model, _, meta = load_bundle(out)
    assert meta["quantize"] == "int8" and "prune" in meta
    assert model.text_encoder is not None
    query = encoder_layers(model.text_encoder.model)[0].attention.self.query
    assert isinstance(query, torch.ao.nn.quantized.dynamic.Linear)
    assert query.weight().shape == (HEADS * 8, 32)
    assert len(Predictor.from_dir(out).predict(TEXTS)) == len(TEXTS)


def test_prune_with_onnx_predicts_what_the_pruned_pytorch_bundle_predicts(
    tiny_bundle: Path, exports: dict[str, Path], tmp_path: Path
) -> None:
    out = export_bundle(tiny_bundle, tmp_path / "onnx", onnx=True, prune=(0.5, 0.5))
    expected = Predictor.from_dir(exports["pruned"]).predict(TEXTS)
    got = Predictor.from_dir(out).predict(TEXTS)
    for e, g in zip(expected, got, strict=True):
        assert g.label == e.label
        assert g.probabilities == pytest.approx(e.probabilities, abs=1e-4)


def test_prune_data_scores_units_by_their_activations_on_its_texts(
    tiny_bundle: Path,
    exports: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts_file = REPO / "tests" / "fixtures" / "tiny_test.csv"
    out = tmp_path / "data"
    args = ["--prune", "--prune-heads", "0.5", "--prune-ffn", "0", "--prune-data", str(texts_file)]
    assert run_cli_in_process(monkeypatch, "export", str(tiny_bundle), "-o", str(out), *args) == 0
    stored = json.loads((out / "bundle.json").read_text())["prune"]
    model, _, _ = load_bundle(exports["merged"])
    assert model.text_encoder is not None
    from fusion.predict_file import iter_texts

    texts = list(iter_texts(texts_file))
    scores = (activation_scores(model.text_encoder, texts), f"activations on {len(texts)} texts")
    assert stored == plan_pruning(model.text_encoder.model, 0.5, 0.0, scores).to_dict()
    assert stored["importance"] == f"activations on {len(texts)} texts"
    assert len(Predictor.from_dir(out).predict(TEXTS)) == len(TEXTS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prune", "--prune-heads", "1"], "--prune-heads must be a fraction with 0 <= f < 1"),
        (["--prune", "--prune-ffn", "-0.1"], "--prune-ffn must be a fraction with 0 <= f < 1"),
        (["--prune-heads", "0.5"], "take effect with --prune"),
        (["--prune", "--prune-data", "missing.csv"], "missing.csv: file not found"),
    ],
)
def test_prune_bad_amounts_are_one_line_errors(
    tiny_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    code = run_cli_in_process(monkeypatch, "export", str(tiny_bundle), "-o", str(out), *args)
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
    assert not out.exists()


def test_prune_refuses_a_bundle_pruned_already(exports: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(Exception, match="pruned already"):
        export_bundle(exports["pruned"], tmp_path / "again", prune=(0.5, 0.0))
    with pytest.raises(PruneError, match="--prune-heads"):
        export_bundle(exports["merged"], tmp_path / "bad", prune=(float("nan"), 0.0))


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"heads": [0, 1], "ffn_rows": 5}] * 2, "do not fit its plan"),
        ([{"heads": [0, 1], "ffn_rows": 19}], "describes 1 layers but the encoder has 2"),
        ("all", "'prune' is malformed"),
    ],
)
def test_prune_plan_that_does_not_fit_the_weights_is_a_bundle_error(
    exports: dict[str, Path], tmp_path: Path, layers: object, message: str
) -> None:
    bundle = Path(shutil.copytree(exports["pruned"], tmp_path / "bundle"))
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["prune"]["layers"] = layers
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle)
