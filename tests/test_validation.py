"""Validation that looks like the goal: held-out entities, the rules behind the automatic
settings, calibration, and what selection reads."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import kg
from fusion.auto import holdout_candidates, label_facts_restate_labels
from fusion.calibration import (
    expected_calibration_error,
    fit_temperature,
    probabilities,
)
from fusion.data import Example
from fusion.setup import Selection, SelectionWarning, choose_selection
from fusion.split import hold_out_entities, partition_validation, validation_split


def corpus(n: int = 200) -> tuple[list[Example], list[list[str]]]:
    """Texts about one of 40 species each, some also naming a shared colour."""
    examples = [Example(f"text {i}", "abcd"[i % 4]) for i in range(n)]
    mentions = [[f"species{i % 40}"] + (["red"] if i % 3 == 0 else []) for i in range(n)]
    return examples, mentions


def test_validation_split_keeps_held_out_entities_out_of_training() -> None:
    examples, mentions = corpus()
    candidates = {f"species{k}" for k in range(40)}
    split = validation_split(examples, mentions, 0.15, 0.05, seed=3, candidates=candidates)
    held = set(split.held_out)
    assert held and held <= candidates  # the colour shared by many texts is never held out
    train_entities = {e for m in split.train_mentions for e in m}
    assert not held & train_entities
    by_text = {e.text: m for e, m in zip(examples, mentions, strict=True)}
    assert all(held & set(by_text[e.text]) for e in split.unseen)
    assert not any(held & set(by_text[e.text]) for e in split.seen)
    assert 0.10 * 200 <= len(split.unseen) <= 0.15 * 200 * 1.1 + 1
    everything = split.train + split.unseen + split.seen
    assert sorted(e.text for e in everything) == sorted(e.text for e in examples)
    again = validation_split(examples, mentions, 0.15, 0.05, seed=3, candidates=candidates)
    assert again.held_out == split.held_out and again.seen == split.seen


def test_holding_out_never_takes_most_of_a_label() -> None:
    # one entity carries every text of label "b": holding it out would leave b untrainable
    labels = ["a"] * 30 + ["b"] * 10
    mentions = [[f"e{i % 10}"] for i in range(30)] + [["only-b"]] * 10
    for seed in range(10):
        held = hold_out_entities(labels, mentions, 0.3, seed, unit="texts")
        assert "only-b" not in held
        left = Counter(lab for lab, m in zip(labels, mentions, strict=True) if not held & set(m))
        assert left["a"] >= 15 and left["b"] == 10


def test_partition_validation_flags_texts_about_entities_training_lacks() -> None:
    flags = partition_validation([["x"], ["y", "z"], []], [["x", "y"]], candidates=None)
    assert flags == [False, True, False]
    assert partition_validation([["z"]], [["x"]], candidates={"x"}) == [False]


def test_selection_falls_back_to_a_stated_mix_when_val_unseen_is_small() -> None:
    assert choose_selection(120, 30, 200).on == "unseen"
    with pytest.warns(SelectionWarning, match="only 12 val:unseen texts about 3"):
        mix = choose_selection(12, 3, 100)
    assert mix.on == "mix"
    with pytest.warns(SelectionWarning, match="no validation text mentions"):
        assert choose_selection(0, 0, 50).on == "all"
    metrics = {
        "val:unseen": {"n": 10, "accuracy": 0.6, "loss": 1.0},
        "val:seen": {"n": 10, "accuracy": 1.0, "loss": 0.2},
        "val": {"n": 20, "accuracy": 0.8, "loss": 0.6},
    }
    assert Selection("unseen", "").score(metrics) == (0.6, 1.0)
    assert Selection("mix", "").score(metrics) == pytest.approx((0.8, 0.6))
    assert Selection("all", "").score(metrics) == (0.8, 0.6)


@pytest.fixture(scope="module")
def facts_kg(tmp_path_factory: pytest.TempPathFactory) -> kg.KnowledgeGraph:
    ex = "http://example.org/facts/"
    rows = [(f"s{i}", "type", "water" if i % 2 else "fire") for i in range(20)]  # one fact each
    rows += [(f"m{i}", "sign_of", d) for i in range(20) for d in ("water", "fire")]  # two each
    rows += [(f"s{i}", "a_kind", "species") for i in range(30)]
    path = tmp_path_factory.mktemp("facts") / "g.nt"
    typ = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"
    lines = [
        f"<{ex}{s}> {typ if p == 'a_kind' else f'<{ex}{p}>'} <{ex}{o}> .\n" for s, p, o in rows
    ]
    path.write_text("".join(lines))
    return kg.load(path)


def test_label_facts_that_restate_labels_are_hidden_others_kept(
    facts_kg: kg.KnowledgeGraph,
) -> None:
    ex = "http://example.org/facts/"
    fire, water = facts_kg.entity_id(ex + "fire"), facts_kg.entity_id(ex + "water")
    nodes = [fire, water]
    species = [[facts_kg.entity_id(f"{ex}s{i}")] for i in range(20)]
    gold = [1 if i % 2 else 0 for i in range(20)]
    restate = label_facts_restate_labels(facts_kg, nodes, species, gold)
    assert restate.value == 1.0 and "100%" in restate.reason
    signs = [[facts_kg.entity_id(f"{ex}m{i}")] for i in range(20)]
    assert label_facts_restate_labels(facts_kg, nodes, signs, gold).value == 0.0
    few = label_facts_restate_labels(facts_kg, nodes, species[:2] + [[]] * 98, gold[:2] + [0] * 98)
    assert few.value == 0.0 and "too few" in few.reason


def test_holdout_candidates_are_the_kind_most_texts_mention(facts_kg: kg.KnowledgeGraph) -> None:
    ex = "http://example.org/facts/"
    nodes = [facts_kg.entity_id(ex + "fire"), facts_kg.entity_id(ex + "water")]
    linked = [[facts_kg.entity_id(f"{ex}s{i}"), facts_kg.entity_id(f"{ex}m{i}")] for i in range(20)]
    chosen, why = holdout_candidates(facts_kg, nodes, linked)
    assert chosen == {facts_kg.entity_id(f"{ex}s{i}") for i in range(20)}
    assert "species" in why


def test_temperature_scaling_calibrates_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 600)
    logits = rng.normal(0, 1, (600, 3))
    right = rng.random(600) < 0.7  # 70% right, but logits say ~99%
    logits[np.arange(600), np.where(right, gold, (gold + 1) % 3)] += 6.0
    raw = expected_calibration_error(probabilities(logits), gold)
    t = fit_temperature(logits[:300], gold[:300])
    scaled = expected_calibration_error(probabilities(logits[300:], t), gold[300:])
    assert t > 1.5 and scaled < raw / 2 and scaled < 0.08
    assert (probabilities(logits, t).argmax(1) == logits.argmax(1)).all()  # same predictions
    assert fit_temperature(logits[:5], gold[:5]) == 1.0  # too few texts to fit on


def test_expected_calibration_error_of_perfect_and_of_overconfident_predictions() -> None:
    gold = np.array([0, 1, 0, 1])
    assert expected_calibration_error(np.eye(2)[gold], gold) == 0.0
    wrong = np.eye(2)[1 - gold]
    assert expected_calibration_error(wrong, gold) == pytest.approx(1.0)


def test_data_files_not_read_by_selection_are_named_in_one_place(tmp_path: Path) -> None:
    from fusion.config import load_config
    from fusion.tune import without_tests

    config = load_config(
        None, ["kg.files=[x.ttl]", "data.train=t.csv", "data.tests={unseen: u.csv}"]
    )
    assert without_tests(config).data.tests == {} and config.data.tests == {"unseen": "u.csv"}


def test_hops_probe_warns_when_the_kg_adds_nothing_to_the_text(facts_kg: kg.KnowledgeGraph) -> None:
    from fusion.path_counts import PathCounter
    from fusion.reference import ChoiceSplit, KGHelpWarning, choose_hops

    ex = "http://example.org/facts/"
    counter = PathCounter(
        facts_kg, [facts_kg.entity_id(ex + "fire"), facts_kg.entity_id(ex + "water")]
    )
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 120)
    embeddings = rng.normal(0, 1, (120, 8)) + gold[:, None]  # the text alone is informative
    walks: list[dict] = [{} for _ in range(120)]  # nothing linked: no label path at all
    with pytest.warns(KGHelpWarning, match="do not help on validation"):
        choice, scores = choose_hops(
            counter, [ChoiceSplit(embeddings, walks, gold, np.arange(80), np.arange(80, 120))], 8
        )
    assert choice.value == 1 and scores.accuracy[1] == scores.accuracy[0]  # a tie: fewer hops


def test_the_kg_warning_reads_the_best_hops_not_the_fewest_within_one_standard_error() -> None:
    from fusion.reference import fewest_within_one_se, paths_add_nothing

    scores = {0: 0.80, 1: 0.79, 2: 0.80, 3: 0.83}
    assert fewest_within_one_se({h: scores[h] for h in (1, 2, 3)}, 60)[0] == 1  # below text
    assert not paths_add_nothing(scores)  # yet 3 hops lift the reference: no warning
    assert paths_add_nothing({0: 0.80, 1: 0.79, 2: 0.80, 3: 0.78})
