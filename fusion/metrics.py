"""Classification metrics: accuracy, macro-F1, a per-class report and a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(
    gold: Sequence[int], predicted: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Metrics over label indices; macro-F1 averages over every class of ``labels``
    (a class never predicted and never true does not count, sklearn's convention)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    y, p = np.asarray(gold), np.asarray(predicted)
    present = sorted(set(y.tolist()) | set(p.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, p, labels=list(range(len(labels))), zero_division=0
    )
    return {
        "n": len(y),
        "accuracy": float((y == p).mean()) if len(y) else 0.0,
        "macro_f1": float(f1_score(y, p, labels=present, average="macro", zero_division=0))
        if len(y)
        else 0.0,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": confusion_matrix(y, p, labels=list(range(len(labels)))).tolist(),
    }
