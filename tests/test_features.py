"""Node features: embedded on first touch, kept by the text they were made from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import kg
from fusion.encoder import EncoderConfig, TextEncoder
from fusion.features import FeatureCache, FeatureTable, NodeFeatures, encoder_key, text_key

EX = "http://example.org/tiny/"


class CountingEncoder:
    """A TextEncoder's `embed`, recording every text it is given."""

    def __init__(self, encoder: TextEncoder):
        self.encoder = encoder
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.encoder.embed(texts)


@pytest.fixture(scope="module")
def encoder(tiny_bert: Path) -> TextEncoder:
    return TextEncoder(EncoderConfig(path=str(tiny_bert)), adapt=False)


def test_rows_embed_only_the_entities_asked_for_once(
    tiny_kg: kg.KnowledgeGraph, encoder: TextEncoder
) -> None:
    embed = CountingEncoder(encoder)
    features = NodeFeatures(tiny_kg, FeatureTable(encoder.hidden_size, embed))
    flu, fever = tiny_kg.entity_id(EX + "flu"), tiny_kg.entity_id(EX + "fever")
    x = features.rows([flu, fever, flu])
    assert x.shape == (3, encoder.hidden_size)
    assert sorted(embed.texts) == sorted([tiny_kg.text(flu), tiny_kg.text(fever)])
    assert np.allclose(x[0].numpy(), encoder.embed([tiny_kg.text(flu)])[0], atol=1e-5)
    assert np.array_equal(x[0].numpy(), x[2].numpy())
    features.rows([fever, flu])
    assert len(embed.texts) == 2  # nothing embedded twice
    assert len(features.touched()[0]) == 2 < tiny_kg.num_entities  # untouched: never embedded


def _with_label(ttl: Path, old: str, new: str, folder: Path) -> kg.KnowledgeGraph:
    text = ttl.read_text(encoding="utf-8")
    assert old in text
    path = folder / "changed.ttl"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return kg.load(path)


def test_changing_one_entity_label_re_embeds_only_that_entity(
    tiny_ttl: Path, encoder: TextEncoder, tmp_path: Path
) -> None:
    folder, key = tmp_path / "cache", encoder_key(encoder)
    graph = kg.load(tiny_ttl)
    first = CountingEncoder(encoder)
    cache = FeatureCache.load(folder, key)
    NodeFeatures(graph, FeatureTable(encoder.hidden_size, first, cache=cache)).rows(
        range(graph.num_entities)
    )
    assert len(first.texts) == graph.num_entities
    cache.save(folder, "run-1")

    changed = _with_label(tiny_ttl, '"Common cold"', '"Head cold"', tmp_path)
    second = CountingEncoder(encoder)
    again = FeatureCache.load(folder, key)
    features = NodeFeatures(changed, FeatureTable(encoder.hidden_size, second, cache=again))
    x = features.rows(range(changed.num_entities))
    cold = changed.entity_id(EX + "cold")
    assert second.texts == [changed.text(cold)] and changed.text(cold).startswith("Head cold")
    assert np.allclose(x[cold].numpy(), encoder.embed([changed.text(cold)])[0], atol=1e-5)
    # another encoder's vectors are never reused
    assert len(FeatureCache.load(folder, "another-encoder")) == 0


def test_a_new_graph_view_reuses_vectors_of_unchanged_texts(
    tiny_ttl: Path, encoder: TextEncoder, tmp_path: Path
) -> None:
    graph = kg.load(tiny_ttl)
    embed = CountingEncoder(encoder)
    features = NodeFeatures(graph, FeatureTable(encoder.hidden_size, embed))
    features.rows(range(graph.num_entities))
    changed = _with_label(tiny_ttl, '"Hay fever"', '"Pollen allergy"', tmp_path)
    embed.texts.clear()
    view = features.on_graph(changed)
    view.rows(range(changed.num_entities))
    assert embed.texts == [changed.text(changed.entity_id(EX + "hay_fever"))]


def test_a_bounded_table_drops_the_vectors_met_while_serving_but_keeps_the_pinned(
    tiny_kg: kg.KnowledgeGraph, encoder: TextEncoder
) -> None:
    ids = list(range(tiny_kg.num_entities))
    texts = [tiny_kg.text(e) for e in ids[:2]]
    pinned = (
        np.stack([np.frombuffer(text_key(t), dtype=np.uint8) for t in texts]),
        encoder.embed(texts),
    )
    embed = CountingEncoder(encoder)
    table = FeatureTable(encoder.hidden_size, embed, pinned=pinned, extra_limit=3)
    features = NodeFeatures(tiny_kg, table)
    features.rows(ids[:2])
    assert embed.texts == []  # the pinned vectors answer
    features.rows(ids[2:6])  # 4 extras: more than the limit, kept until the next lookup
    assert table.size == 6
    x = features.rows(ids[6:8])  # finds 4 > 3 extras: drops them first, then adds 2
    assert table.size == 4 and x.shape == (2, encoder.hidden_size)
    embed.texts.clear()
    features.rows(ids[:2])
    assert embed.texts == []  # pinned vectors survive every drop
    features.rows(ids[2:3])
    assert embed.texts == [tiny_kg.text(ids[2])]  # a dropped extra is embedded again


def test_bundle_stores_the_touched_entities_only(tiny_bundle: Path) -> None:
    from fusion.bundle import load_bundle

    stored = load_file(str(tiny_bundle / "node_features.safetensors"))
    _, resources, _ = load_bundle(tiny_bundle)
    graph = resources.graph
    assert 0 < len(stored["digests"]) < graph.num_entities
    keys = {d.tobytes() for d in stored["digests"]}
    # every key is the text of an entity of the KG: the vectors are found again by text
    texts = {text_key(graph.text(e)) for e in range(graph.num_entities)}
    assert keys <= texts
