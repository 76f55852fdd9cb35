"""`Disambiguator` is written once against the `Graph` protocol: over a compiled KG and over an
embedded Oxigraph store holding the same triples (candidates from its names graph), the same
mentions rank their candidates alike, with the same scores, whichever way the context
statistics are fitted."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import kg
from kg.store_graph import StoreGraph
from nlp.candidates import Mention, MentionCandidate
from nlp.disambiguation import Disambiguator, Weights
from tests.conftest import oxigraph_store

pytestmark = pytest.mark.integration

EX = "http://example.org/disambiguation/"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
NAMES = ["mercury", "jaguar", "python", "amazon", "apple", "java"]
TOPICS = ["planet", "car", "snake", "river", "fruit", "island", "language", "company", "orbit"]


@pytest.fixture(scope="module")
def triples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 entities, six to a name, each with a two-topic description and random edges."""
    rng = random.Random(3)
    lines = set()
    for e in range(36):
        topics = " ".join(rng.sample(TOPICS, 2))
        lines.add(f'<{EX}e{e:02d}> <{RDFS}label> "{NAMES[e % len(NAMES)]}" .')
        lines.add(f'<{EX}e{e:02d}> <{RDFS}comment> "A {topics} thing." .')
        for _ in range(rng.randint(0, 4)):
            lines.add(f"<{EX}e{e:02d}> <{EX}r{rng.randrange(3)}> <{EX}e{rng.randrange(36):02d}> .")
    path = tmp_path_factory.mktemp("disambiguation") / "kg.nt"
    path.write_text("\n".join(sorted(lines)) + "\n")
    return path


@pytest.fixture(scope="module")
def memory(triples: Path) -> kg.KnowledgeGraph:
    return kg.load(triples)


@pytest.fixture(scope="module")
def store_dir(triples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return oxigraph_store([triples], tmp_path_factory.mktemp("disambiguation-oxigraph"))


def _texts() -> list[tuple[str, list[str]]]:
    """Texts and the names mentioned in them, in order."""
    rng = random.Random(8)
    out = []
    for _ in range(12):
        names = rng.sample(NAMES, rng.randint(1, 3))
        words = [w for name in names for w in (name, *rng.sample(TOPICS, 2))]
        out.append((" ".join(words), names))
    return out


def _mentions(graph: kg.KnowledgeGraph, names: list[str]) -> list[Mention]:
    """One mention per name, every entity of that name a candidate (``graph``'s ids), string
    similarity 1.0 or 0.9 by its IRI."""
    out = []
    for i, name in enumerate(names):
        entities = [e for e in range(graph.num_entities) if graph.label(e) == name]
        candidates = [
            MentionCandidate(e, name, 1.0 if int(graph.iri(e)[-1]) % 2 else 0.9, "exact")
            for e in entities
        ]
        out.append(Mention(i, i + 1, candidates))
    return out


def _rankings(
    disambiguator: Disambiguator, names_graph: kg.KnowledgeGraph
) -> list[list[list[tuple[str, float]]]]:
    return [
        [
            [(names_graph.iri(e), score) for e, score in ranked]
            for ranked in disambiguator.rank(text, _mentions(names_graph, names))
        ]
        for text, names in _texts()
    ]


@pytest.mark.parametrize("fit_on_contexts", [True, False])
def test_disambiguation_parity_rankings_over_a_store(
    memory: kg.KnowledgeGraph, store_dir: Path, fit_on_contexts: bool
) -> None:
    store = StoreGraph.connect(store_dir)
    names_graph = store.names_graph
    weights = Weights()
    compiled = Disambiguator(
        memory, weights, range(memory.num_entities), fit_on_contexts=fit_on_contexts
    )
    over_store = Disambiguator(
        store,
        weights,
        range(names_graph.num_entities),
        names=names_graph,
        fit_on_contexts=fit_on_contexts,
    )
    want = _rankings(compiled, memory)
    assert _rankings(over_store, names_graph) == want
    assert any(len({s for _, s in ranked}) > 1 for text in want for ranked in text)


def test_disambiguation_parity_every_signal_counts(
    memory: kg.KnowledgeGraph, store_dir: Path
) -> None:
    """The comparison above is not vacuous: context and coherence move the scores."""
    everything = _rankings(Disambiguator(memory, Weights(), range(memory.num_entities)), memory)
    for weights in (Weights(context=0), Weights(coherence=0)):
        some = _rankings(Disambiguator(memory, weights, range(memory.num_entities)), memory)
        assert some != everything


def test_disambiguation_fits_on_contexts_in_memory_and_on_names_over_a_store(
    memory: kg.KnowledgeGraph, store_dir: Path
) -> None:
    """The one difference the backends keep (module docstring): over a store, reading every
    ambiguous entity's context at build time would read the store."""
    store = StoreGraph.connect(store_dir)
    assert Disambiguator(memory, Weights()).fit_on_contexts
    names_graph = store.names_graph
    over_store = Disambiguator(store, Weights(), names=names_graph)
    assert not over_store.fit_on_contexts
    assert over_store._matrix.shape[0] == 0  # contexts are fetched on first use
    contexts = Disambiguator(memory, Weights(), fit_on_contexts=False)
    assert _rankings(contexts, memory) == _rankings(over_store, names_graph)
