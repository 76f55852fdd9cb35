"""The automatic choices pool several entity-held-out splits: each one's val:unseen texts are
about entities none of its fitting texts mention, with those entities' label facts hidden, and
the choice says how many splits and texts it rests on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kg
from fusion.choice_splits import LinkedTexts, extra_splits, own_split
from fusion.data import Example
from fusion.path_counts import PathCounter
from fusion.reference import choose_hops

EX = "http://example.org/kin/"
SPECIES = 24


@pytest.fixture(scope="module")
def kin_kg(tmp_path_factory: pytest.TempPathFactory) -> kg.KnowledgeGraph:
    """Species s0..s23, each with a type fact (fire for even, water for odd), in kin pairs
    (s0 and s2, s1 and s3, s4 and s6, ...) of one type."""
    rows = [(f"s{i}", "type", "fire" if i % 2 == 0 else "water") for i in range(SPECIES)]
    rows += [(f"s{i}", "kin", f"s{i ^ 2}") for i in range(SPECIES) if i & 2 == 0]
    path = tmp_path_factory.mktemp("kin") / "g.nt"
    path.write_text("".join(f"<{EX}{s}> <{EX}{p}> <{EX}{o}> .\n" for s, p, o in rows))
    return kg.load(path)


def _texts(graph: kg.KnowledgeGraph) -> LinkedTexts:
    """Three texts per species, each naming its species (``"s5 #1"``) and linked to it."""
    examples = [
        Example(f"s{i} #{k}", "fire" if i % 2 == 0 else "water")
        for i in range(SPECIES)
        for k in range(3)
    ]
    ids = [[graph.entity_id(EX + e.text.split()[0])] for e in examples]
    return LinkedTexts(examples, ids, [False] * len(examples))


class _Recorder:
    """An embedding function that keeps the texts of each call (fitting texts, then val)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.zeros((len(texts), 4), dtype=np.float32)


def test_each_extra_split_holds_out_other_entities_and_hides_their_facts(
    kin_kg: kg.KnowledgeGraph,
) -> None:
    counter = PathCounter(kin_kg, [kin_kg.entity_id(EX + "fire"), kin_kg.entity_id(EX + "water")])
    pool = _texts(kin_kg)
    species = {kin_kg.entity_id(EX + f"s{i}") for i in range(SPECIES)}
    embed = _Recorder()
    splits = extra_splits(counter, embed, ["fire", "water"], pool, species, 4, 0.25, 0, True, 0.0)
    assert len(splits) == 4
    type_fact = (kin_kg.relation_id(EX + "type"),)
    held_sets = []
    for split, texts in zip(splits, embed.calls, strict=True):
        fit = {t.split()[0] for t in np.array(texts)[split.train_idx]}
        val = {t.split()[0] for t in np.array(texts)[split.val_idx]}
        assert val and not fit & val  # val:unseen: entities no fitting text mentions
        assert len(split.val_idx) + len(split.train_idx) == len(pool.examples)
        held_sets.append(frozenset(val))
        # a held-out entity's own label fact is hidden; a fitting text (mask rate 0) keeps its own
        assert all(type_fact not in split.walks[i] for i in split.val_idx)
        assert all(split.walks[i][type_fact].sum() == 1 for i in split.train_idx)
        # the kin's fact reaches a val text unless the kin is held out too
        for i in split.val_idx:
            kin = f"s{int(texts[i].split()[0][1:]) ^ 2}"
            reaches = sum(r.sum() for s, r in split.walks[i].items() if len(s) == 2)
            assert reaches == (0 if kin in val else 1)
    assert len(set(held_sets)) > 1  # the splits hold out different entities


def test_the_choice_pools_the_splits_and_says_so(kin_kg: kg.KnowledgeGraph) -> None:
    counter = PathCounter(kin_kg, [kin_kg.entity_id(EX + "fire"), kin_kg.entity_id(EX + "water")])
    pool = _texts(kin_kg)
    species = {kin_kg.entity_id(EX + f"s{i}") for i in range(SPECIES)}

    def embed(texts: list[str]) -> np.ndarray:  # the text says nothing about the type
        return np.random.default_rng(len(texts)).normal(size=(len(texts), 4))

    # validation's own split holds out s0, s4, s8, ...: the kin of each is a fitting species.
    # Every fitting text hides its own fact (as training does where the facts restate labels)
    val = [k for k, e in enumerate(pool.examples) if int(e.text.split()[0][1:]) % 4 == 0]
    fit = [k for k in range(len(pool.examples)) if k not in set(val)]

    def part(idx: list[int], masked: bool) -> LinkedTexts:
        return LinkedTexts(
            [pool.examples[k] for k in idx], [pool.ids[k] for k in idx], [masked] * len(idx)
        )

    held = frozenset(pool.ids[k][0] for k in val)
    own = own_split(counter, embed, ["fire", "water"], part(fit, True), part(val, True), held, 0)
    more = extra_splits(counter, embed, ["fire", "water"], pool, species, 2, 0.25, 0, True, 1.0)
    one, _ = choose_hops(counter, [own], 4)
    pooled, scores = choose_hops(counter, [own, *more], 4)
    texts = len(own.val_idx) + sum(len(s.val_idx) for s in more)
    assert "over 3 entity-held-out splits" in str(pooled.reason)
    assert f"{texts} val:unseen texts in all" in str(pooled.reason)
    assert "splits" not in str(one.reason)
    # only the kin (2 hops) tells a held-out species' type, and a third hop adds nothing: every
    # split says so, and the pooled score is the share of val texts whose kin is not held out
    assert pooled.value == 2 and one.value == 2 and "2 hops best in" in str(pooled.reason)
    accuracy = scores.accuracy
    assert accuracy[2] > max(accuracy[1], accuracy[0]) and accuracy[3] == accuracy[2]


def test_a_plan_pools_as_many_splits_as_configured(
    species_data: dict[str, Path], tiny_bert: Path, tmp_path: Path
) -> None:
    from fusion.config import load_config
    from fusion.setup import Workspace, plan_run

    from .conftest import species_overrides

    reasons = {}
    for n in (1, 3):
        config = load_config(
            None,
            species_overrides(
                species_data,
                tiny_bert,
                tmp_path / f"r{n}",
                "data.val_fraction=0.25",  # enough val:unseen texts to select on
                f"data.choice_splits={n}",
            ),
        )
        plan = plan_run(config, Workspace.open(config, None))
        reasons[n] = str(plan.choices["subgraph.hops"]["reason"])
    assert "entity-held-out splits" not in reasons[1]
    assert "over 3 entity-held-out splits" in reasons[3]


@pytest.mark.parametrize(
    ("scores", "texts", "chosen"),
    [
        ({1: 0.861, 2: 0.984, 3: 0.988}, 252, 2),  # one text apart: validation cannot tell
        ({1: 0.466, 2: 0.750, 3: 0.856}, 2280, 3),  # far apart: the longer paths decide
        ({1: 0.780, 2: 0.780, 3: 0.771}, 641, 1),  # a tie: the fewest
        ({1: 0.70, 2: 0.80, 3: 0.81}, 50, 2),  # few texts widen the margin (0.055)
        ({1: 0.70, 2: 0.80, 3: 0.81}, 50_000, 3),  # many narrow it (0.002)
    ],
)
def test_hops_are_the_fewest_within_one_standard_error_of_the_best(
    scores: dict[int, float], texts: int, chosen: int
) -> None:
    from fusion.reference import fewest_within_one_se

    assert fewest_within_one_se(scores, texts)[0] == chosen
