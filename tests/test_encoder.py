"""The text encoder and the cached node features (tiny BERT, never a download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from fusion.encoder import EncoderConfig, EncoderError, TextEncoder, default_encoder_path


def trainable(encoder: TextEncoder) -> set[str]:
    return {n for n, p in encoder.named_parameters() if p.requires_grad}


def test_encoder_pools_texts_to_normalized_vectors(tiny_bert: Path) -> None:
    encoder = TextEncoder(EncoderConfig(path=str(tiny_bert)), adapt=False)
    vectors = encoder.embed(["a fever and a cough", "skin rash", "flu"])
    assert vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    again = encoder.embed(["a fever and a cough"])
    assert np.allclose(again[0], vectors[0], atol=1e-5)  # padding does not change a text's vector


def test_encoder_mean_pooling_ignores_padding(tiny_bert: Path) -> None:
    encoder = TextEncoder(EncoderConfig(path=str(tiny_bert), pooling="mean"), adapt=False)
    batch = encoder.tokenize(["flu", "a fever and a cough with pain"])
    alone = encoder.tokenize(["flu"])
    with torch.no_grad():
        padded = encoder(batch["input_ids"], batch["attention_mask"])[0]
        single = encoder(alone["input_ids"], alone["attention_mask"])[0]
    assert torch.allclose(padded, single, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_encoder_length_chunks_give_the_vectors_of_one_padded_batch(
    tiny_bert: Path, pooling: str
) -> None:
    encoder = TextEncoder(EncoderConfig(path=str(tiny_bert), pooling=pooling), adapt=False)
    texts = [("a fever and " * (i % 7)) + f"cough {i}" for i in range(21)]  # mixed lengths
    batch = encoder.tokenize(texts)
    with torch.no_grad():
        chunked = encoder(batch["input_ids"], batch["attention_mask"])
    with torch.enable_grad():  # with gradients the whole padded batch runs at once
        whole = encoder(batch["input_ids"], batch["attention_mask"]).detach()
    assert chunked.shape == whole.shape == (21, 32)
    assert torch.allclose(chunked, whole, atol=1e-5)


@pytest.mark.parametrize(
    ("adapter", "expected"),
    [
        ("lora", lambda names: names and all("lora_" in n for n in names)),
        ("ia3", lambda names: names and all("ia3_" in n for n in names)),
        ("frozen", lambda names: not names),
        ("full", lambda names: any("embeddings" in n for n in names)),
    ],
)
def test_encoder_adapters_choose_what_trains(tiny_bert: Path, adapter: str, expected) -> None:  # type: ignore[no-untyped-def]
    encoder = TextEncoder(EncoderConfig(path=str(tiny_bert), adapter=adapter))
    assert expected(trainable(encoder))


def test_encoder_lora_settings_are_applied(tiny_bert: Path) -> None:
    encoder = TextEncoder(
        EncoderConfig(path=str(tiny_bert), lora_r=4, target_modules=("query", "key", "value"))
    )
    names = trainable(encoder)
    assert any(".key.lora_A" in n for n in names)
    shapes = {tuple(p.shape) for n, p in encoder.named_parameters() if "lora_A" in n}
    assert shapes == {(4, 32)}


def test_encoder_errors_never_fetch_and_report_all_problems(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="does not exist; kgfuse never downloads"):
        TextEncoder(EncoderConfig(path=str(tmp_path / "nope")))
    with pytest.raises(EncoderError, match=r"config\.json is missing"):
        TextEncoder(EncoderConfig(path=str(tmp_path)))
    with pytest.raises(ValidationError) as info:  # checked when built, before any load
        EncoderConfig(pooling="max", adapter="prefix", max_length=4)
    assert all(k in str(info.value) for k in ("pooling", "adapter", "max_length"))


def test_encoder_one_loader_serves_the_classifier_and_the_linker(tiny_bert: Path) -> None:
    """The linker's sentence encoder and the classifier's text encoder load a folder the same
    way: the same mean-pooled unit vectors, and the same error for a folder with no model."""
    from nlp.sentence_encoder import Encoder

    texts = ["a fever and a cough", "skin rash", "flu"]
    classifier = TextEncoder(EncoderConfig(path=str(tiny_bert)), adapt=False)
    linker = Encoder(tiny_bert, max_length=128)
    assert np.allclose(linker(texts), classifier.embed(texts), atol=1e-5)
    errors = []
    for load in (
        lambda: TextEncoder(EncoderConfig(path=str(tiny_bert / "x"))),
        lambda: Encoder(tiny_bert / "x"),
    ):
        with pytest.raises(EncoderError, match="does not exist; kgfuse never downloads") as info:
            load()
        errors.append(str(info.value).split(";")[0])
    assert errors[0] == errors[1]


def test_default_encoder_is_the_bundled_minilm() -> None:
    path = default_encoder_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_encoder_top_layers_adapts_only_the_upper_layers(tiny_bert: Path) -> None:
    encoder = TextEncoder(EncoderConfig(path=str(tiny_bert), top_layers=1))
    layers = {n.split(".layer.")[1].split(".")[0] for n in trainable(encoder)}
    assert layers == {"1"}  # tiny BERT has layers 0 and 1
    deeper = TextEncoder(EncoderConfig(path=str(tiny_bert), top_layers=3))  # more than it has
    assert {n.split(".layer.")[1].split(".")[0] for n in trainable(deeper)} == {"0", "1"}
