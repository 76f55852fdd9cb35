"""The linker's shortcuts for large KGs give the answers of the plain definitions: the n-gram
index built in chunks, the key tables' bitmap filter, window entries read by file, coherence
counted through one intersection."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import spacy

import kg
from nlp import alias_lookup, disambiguation, ngram_index
from nlp.alias_arrays import KeyTable
from nlp.candidates import Mention, MentionCandidate
from nlp.disambiguation import Disambiguator, Weights
from nlp.linker import from_kg

FIXTURE = Path(__file__).parent / "fixtures" / "linker.ttl"
EX = "http://example.org/chain/"


def test_ngram_index_postings_hold_each_strings_distinct_grams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(0)
    texts = ["", "a", "diarrhoea", "diarrhoea", "façade", "中文字", "x\U0001f600y", "aaaa"]
    texts += ["".join(rng.choice("abcé -") for _ in range(rng.randint(0, 12))) for _ in range(60)]
    monkeypatch.setattr(ngram_index, "CHUNK", 7)  # many chunks, some ending mid-way
    index = ngram_index.NgramIndex(texts)
    expected: dict[int, list[int]] = {}
    for i, codes in enumerate(ngram_index._codes(texts)):
        for g in sorted(set(codes.tolist())):
            expected.setdefault(g, []).append(i)
    assert index.grams.dtype == np.int64 and index.postings.dtype == np.int32
    assert index.grams.tolist() == sorted(expected)
    got = {
        int(g): index.postings[index.indptr[n] : index.indptr[n + 1]].tolist()
        for n, g in enumerate(index.grams)
    }
    assert got == expected
    assert index.sizes.tolist() == [len(set(c.tolist())) for c in ngram_index._codes(texts)]
    assert texts[index.search("diarhoea", limit=1)[0].id] == "diarrhoea"


def test_key_table_found_is_membership_for_present_and_absent_hashes() -> None:
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**64, size=5000, dtype=np.uint64)
    table = KeyTable.build(keys.tolist(), list(range(len(keys))), np.int32)
    absent = rng.integers(0, 2**64, size=5000, dtype=np.uint64)
    near = keys[:2000] ^ np.uint64(1)  # same top bits as a key: the bitmap lets them through
    queries = np.concatenate([keys, absent, near, keys[:10]])
    members = set(keys.tolist())
    assert table.found(queries).tolist() == [int(q) in members for q in queries]
    assert table.found(np.zeros(0, np.uint64)).tolist() == []
    empty = KeyTable.build([], [], np.int32)
    assert empty.found(queries[:3]).tolist() == [False] * 3


def test_linker_windows_read_by_file_match_the_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = kg.load(FIXTURE)
    texts = [
        "my joints have pain and a pain in my back",
        "my joints, joints pain; my joints are painful",
        "I have a rash. My skin is dry",
        "pain in the back of my joints, back pain",
    ]

    def run() -> list[list[tuple[int, int, str, list[tuple[str, float]]]]]:
        nlp = from_kg(graph, spacy.blank("en"))
        return [
            [(e.start_char, e.end_char, e.kb_id_, e._.kg_candidates) for e in doc._.kg_entities]
            for doc in nlp.pipe(texts)
        ]

    scanned = run()
    monkeypatch.setattr(alias_lookup, "SCAN", 0)  # every anchor word's entries read by file
    assert run() == scanned
    assert any(scanned)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> kg.KnowledgeGraph:
    """e0 - e1 - e2 - e3 - e4, and e5 alone."""
    lines = [f'<{EX}e{i}> <http://www.w3.org/2000/01/rdf-schema#label> "n{i}" .' for i in range(6)]
    lines += [f"<{EX}e{i}> <{EX}next> <{EX}e{i + 1}> ." for i in range(4)]
    path = tmp_path_factory.mktemp("chain") / "kg.nt"
    path.write_text("\n".join(lines) + "\n")
    return kg.load(path)


def test_disambiguation_coherence_counts_other_mentions_within_two_hops(
    chain: kg.KnowledgeGraph,
) -> None:
    e = {i: chain.entity_id(f"{EX}e{i}") for i in range(6)}

    def mention(at: int, *ids: int) -> Mention:
        return Mention(at, at + 1, [MentionCandidate(e[i], f"n{i}", 1.0, "exact") for i in ids])

    only_coherence = Weights(string=0.0, prior=0.0, context=0.0, coherence=1.0)
    disambiguator = Disambiguator(chain, only_coherence, ambiguous=[])
    # e0 reaches e1 and e2 (two hops), not e3 or e4: one other mention of three, though
    # two of its candidates are reached: (1 + 1) / (3 + 2)
    mentions = [mention(0, 0, 5), mention(1, 1, 2), mention(2, 3), mention(3, 4)]
    ranked = disambiguator.rank("n0 n1 n3 n4", mentions)
    assert ranked[0] == [(e[0], 0.4), (e[5], 0.2)]  # e5 reaches none: (0 + 1) / (3 + 2)
    assert ranked[2] == [(e[3], 0.6)]  # e3 reaches e1 (two hops) and e4: (2 + 1) / (3 + 2)
    assert disambiguator.rank("n0", mentions[:1]) == [[(e[0], 0.5), (e[5], 0.5)]]  # alone


def test_disambiguation_ranks_as_arrays_what_the_loop_ranks(
    chain: kg.KnowledgeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = {i: chain.entity_id(f"{EX}e{i}") for i in range(6)}
    rng = random.Random(0)

    def mention(start: int, end: int, *ids: int) -> Mention:
        sims = [rng.choice([1.0, 0.8, 0.65, rng.random()]) for _ in ids]
        return Mention(
            start,
            end,
            [MentionCandidate(e[i], f"n{i}", s, "x") for i, s in zip(ids, sims, strict=True)],
        )

    texts = [
        # overlapping mentions (not each other's others), a repeated word, a lone entity
        [mention(0, 2, 0, 5), mention(1, 2, 1, 2), mention(2, 3, 3, 0), mention(4, 5, 4, 5, 2)],
        [mention(0, 1, 0, 1, 2, 3, 4, 5), mention(3, 4, 0, 1, 2, 3, 4, 5)],
        [mention(0, 1, 5), mention(2, 3, 4)],
        [mention(0, 1, 2, 3)],
    ]
    # a float32 similarity (a semantic candidate's cosine) keeps its float32 product
    texts.append(
        [
            Mention(
                0,
                1,
                [
                    MentionCandidate(e[0], "n0", np.float32(0.7071), "semantic"),
                    MentionCandidate(e[1], "n1", 0.9, "fuzzy"),
                ],
            ),
            texts[3][0],
        ]
    )
    for weights in (Weights(), Weights(string=0.3, prior=0.3, context=0.0, coherence=0.4)):
        disambiguator = Disambiguator(chain, weights)
        monkeypatch.setattr(disambiguation, "ARRAY_RANKING", 10**9)
        looped = [disambiguator.rank("n0 n1 n2 n3 n4 n5", m) for m in texts]
        monkeypatch.setattr(disambiguation, "ARRAY_RANKING", 1)
        assert [disambiguator.rank("n0 n1 n2 n3 n4 n5", m) for m in texts] == looped
        assert len({s for r in looped for cands in r for _, s in cands}) > 5


def test_round4_rounds_as_python_does() -> None:
    rng = np.random.default_rng(0)
    halves = (np.arange(20_000) + 0.5) / 1e4  # decimal halves: their floats lie either side
    values = np.concatenate([rng.random(20_000), halves, np.nextafter(halves, 2), [0.0, 1.0]])
    assert disambiguation._round4(values).tolist() == [round(v, 4) for v in values.tolist()]


def test_ngram_candidates_count_postings_as_np_unique() -> None:
    rng = np.random.default_rng(0)
    runs = [np.sort(rng.choice(500, rng.integers(0, 60), replace=False)) for _ in range(30)]
    for found in [np.concatenate(runs).astype(np.int32), np.zeros(0, np.int32), np.array([7])]:
        ids, counts = ngram_index._counted(found)
        expected = np.unique(found, return_counts=True)
        assert ids.tolist() == expected[0].tolist() and counts.tolist() == expected[1].tolist()
