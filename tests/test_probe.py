"""Linear probe, then fine-tune: the text head starts as the fitted regression (fusion/probe.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fusion.probe import fit_text_probe, load_probe
from fusion.reference import C_GRID


def blobs(n: int, classes: list[int], dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (not standardised) vectors around a centre per class, far from the origin."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3, (max(classes) + 1, dim)) + 10.0
    y = rng.choice(classes, n)
    return (centres[y] + rng.normal(0, 1.5, (n, dim))).astype(np.float32), y


def head_logits(x: np.ndarray, probe_head: nn.Linear) -> np.ndarray:
    with torch.no_grad():
        return probe_head(torch.as_tensor(x)).double().numpy()


def test_the_head_scores_like_the_regression_on_raw_vectors() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = blobs(300, [0, 1, 2], 8, seed=0)
    vx, vy = blobs(100, [0, 1, 2], 8, seed=1)
    probe = fit_text_probe(x, y, vx, vy, num_labels=4)  # class 3: no training text
    head = nn.Linear(8, 4)
    load_probe(head, probe)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=probe.C, max_iter=1000).fit(scaler.transform(x), y)
    expected = model.decision_function(scaler.transform(vx))
    got = head_logits(vx, head)
    assert np.allclose(got[:, :3], expected, atol=1e-3)
    assert (got[:, 3] <= got[:, :3].min(1) + 1e-3).all()  # the unseen class never wins
    assert probe.C in C_GRID
    assert probe.val_accuracy == pytest.approx(float((got.argmax(1) == vy).mean()))
    assert probe.val_accuracy > 0.9


def test_two_classes_give_the_regressions_probabilities() -> None:
    x, y = blobs(200, [0, 1], 5, seed=2)
    vx, vy = blobs(50, [0, 1], 5, seed=3)
    probe = fit_text_probe(x, y, vx, vy, num_labels=2)
    head = nn.Linear(5, 2)
    load_probe(head, probe)
    probs = torch.softmax(torch.as_tensor(head_logits(vx, head)), -1).numpy()
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=probe.C, max_iter=1000).fit(scaler.transform(x), y)
    assert np.allclose(probs, model.predict_proba(scaler.transform(vx)), atol=1e-4)


def test_a_wider_head_reads_the_probe_on_the_text_columns_and_zero_elsewhere() -> None:
    x, y = blobs(120, [0, 1, 2], 4, seed=4)
    probe = fit_text_probe(x, y, x[:30], y[:30], num_labels=3)
    head = nn.Linear(4 + 6, 3)  # a concat head: text vector, then 6 count columns
    load_probe(head, probe)
    assert torch.equal(head.weight[:, 4:], torch.zeros(3, 6))
    with pytest.raises(ValueError, match="does not fit the text head"):
        load_probe(nn.Linear(3, 3), probe)


def test_auto_starts_from_the_probe_only_where_the_kg_paths_add_nothing_on_validation() -> None:
    from fusion.config import RunConfig, config_from_dict
    from fusion.reference import HopScores
    from fusion.setup import resolve_probe_init

    def config(probe: object) -> RunConfig:
        return config_from_dict(
            {
                "kg": {"files": ["kg.nt"]},
                "data": {"train": "t.csv"},
                "train": {"probe_init": probe},
            },
            "a test config",
        )

    auto = config("auto")
    text_strong = resolve_probe_init(auto, HopScores({0: 0.92, 1: 0.90, 2: 0.91, 3: 0.90}, 300))
    kg_strong = resolve_probe_init(auto, HopScores({0: 0.39, 1: 0.39, 2: 0.62, 3: 0.78}, 300))
    assert text_strong.value is True and "text alone 0.920" in text_strong.reason
    assert kg_strong.value is False and "3-hop label paths 0.780" in kg_strong.reason
    # a lift within one standard error (0.016 on 642 texts) is no lift; on 50,000 texts it is
    slight = {0: 0.780, 1: 0.782, 2: 0.779, 3: 0.776}
    assert resolve_probe_init(auto, HopScores(slight, 642)).value is True
    assert resolve_probe_init(auto, HopScores(slight, 50_000)).value is False
    assert resolve_probe_init(auto, None).value is False  # no reference: no evidence, random start
    as_set = resolve_probe_init(config(True), HopScores({0: 0.1, 3: 0.9}, 300))
    assert as_set.value is True
