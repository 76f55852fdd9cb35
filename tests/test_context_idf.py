"""The disambiguator fits its context statistics without scikit-learn (nlp/disambiguation.py
`_idf`, `_Analyzer`, nlp/stop_words.py): the same vocabulary, IDF and analysis as
``TfidfVectorizer(stop_words="english", sublinear_tf=True, dtype=np.float32)``, which it
replaced, so a linker built today scores as one whose index was written with scikit-learn."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from nlp.disambiguation import _Analyzer, _idf
from nlp.stop_words import ENGLISH_STOP_WORDS as OWN_STOP_WORDS

REPO = Path(__file__).resolve().parents[1]
WORDS = [
    "Fever", "fever", "rash", "skin", "itching", "the", "and", "of", "naïve", "café", "über",
    "x", "a1", "h2o", "covid_19", "2024", "Straße", "пациент", "头痛", "don't", "well-known",
]  # fmt: skip


def _corpus(seed: int, documents: int) -> list[str]:
    """Random documents over ``WORDS`` (case, accents, digits, stop words, one-letter words),
    with empty, stop-words-only and repeated documents among them."""
    rng = random.Random(seed)
    out = ["", "the and of", "fever fever FEVER"]
    for _ in range(documents):
        out.append(" ".join(rng.choices(WORDS, k=rng.randint(0, 12))) + rng.choice(["", ".", "!"]))
    return out + out[3:10]


@pytest.mark.parametrize("seed, documents", [(0, 40), (1, 3000)])
def test_idf_is_scikit_learns(seed: int, documents: int) -> None:
    corpus = _corpus(seed, documents)
    fitted = TfidfVectorizer(stop_words="english", sublinear_tf=True, dtype=np.float32).fit(corpus)
    vocabulary, idf = _idf(corpus, _Analyzer(OWN_STOP_WORDS))
    assert vocabulary == {t: int(i) for t, i in fitted.vocabulary_.items()}
    assert idf.dtype == np.float32
    assert np.array_equal(idf, fitted.idf_.astype(np.float32))  # bit for bit


def test_idf_of_a_corpus_without_words_is_empty() -> None:
    vocabulary, idf = _idf(["", "the and of", "a"], _Analyzer(OWN_STOP_WORDS))
    assert vocabulary == {} and idf.shape == (0,)
    with pytest.raises(ValueError):  # scikit-learn refuses it: the caller then scores neutral
        TfidfVectorizer(stop_words="english").fit(["", "the and of", "a"])


def test_analyzer_and_stop_words_are_scikit_learns() -> None:
    assert OWN_STOP_WORDS == ENGLISH_STOP_WORDS
    theirs = TfidfVectorizer(stop_words="english").build_analyzer()
    ours = _Analyzer(OWN_STOP_WORDS)
    for text in _corpus(2, 200):
        assert ours(text) == theirs(text)


def test_building_a_linker_does_not_import_scikit_learn() -> None:
    """scikit-learn costs a fresh build 1.7 s and 60 MB, and its objects slow every full
    garbage collection while the linker links."""
    code = (
        "import sys, kg; from nlp.linker import from_kg; from nlp.linker_index import save_index; "
        "import tempfile; nlp = from_kg(kg.load(sys.argv[1])); "
        "d = tempfile.mkdtemp(); save_index(nlp, d + '/ix'); nlp('I have a skin rash'); "
        "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'"
    )
    kg_file = REPO / "tests" / "fixtures" / "linker.ttl"
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, str(kg_file)],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
