"""What a finished run reports: each split's metrics, calibrated, and the training summary.

`fusion.train.run` calls these once training is done; the bundle stores what they return
(``metrics`` and ``training`` in bundle.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fusion.calibration import calibration_report
from fusion.evaluate import evaluate_shared, evaluate_validation, predict_logits
from fusion.model import FusionClassifier
from fusion.resources import Prepared, Resources


def final_metrics(
    model: FusionClassifier,
    resources: Resources,
    val: list[Prepared],
    val_unseen: Sequence[bool],
    tests: dict[str, list[Prepared]],
    temperature: float,
) -> dict[str, dict[str, Any]]:
    """Split name (val, val:unseen, val:seen, test:NAME) -> its metrics: accuracy, macro-F1
    and loss, the share of texts linked to an entity, and the calibration report at
    ``temperature``."""
    metrics = evaluate_validation(model, resources, val, val_unseen)
    metrics |= {f"test:{n}": evaluate_shared(model, resources, ex) for n, ex in tests.items()}
    parts = {
        "val": val,
        "val:unseen": [p for p, u in zip(val, val_unseen, strict=True) if u],
        "val:seen": [p for p, u in zip(val, val_unseen, strict=True) if not u],
        **{f"test:{n}": ex for n, ex in tests.items()},
    }
    for name, m in metrics.items():
        examples = parts[name]
        m["linked_share"] = float(np.mean([bool(p.linked) for p in examples])) if examples else 0.0
        gold = np.array([p.label for p in examples])
        m.update(calibration_report(predict_logits(model, resources, examples), gold, temperature))
    return metrics
