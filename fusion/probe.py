"""Linear probe, then fine-tune: the text head starts where a logistic regression ends.

A text head initialised at random is still learning when training stops: on symptom2disease the
LoRA-tuned text branch reached 0.58 on val:unseen after its epochs, where a logistic regression on
the frozen encoder's vectors reaches 0.92. Fine-tuning from a random head also distorts the
pretrained features before the head is any good, which costs most on inputs unlike the training
set (Kumar et al., ICLR 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution"), and texts about unseen entities are such inputs.

So with ``train.probe_init`` the text head's weights are first set to a multinomial logistic
regression (`fusion.reference.fit_reference`: standardised inputs, ``C`` chosen on the same
validation texts that select the checkpoint) fitted on the frozen encoder's pooled vectors, the
very vectors the head reads before any adapter step (a LoRA adapter starts as the identity), and,
for a head that reads them after the text vector (``counts_head: concat``), on the label counts
too (fusion/train.py passes both). The standardisation is folded into the weights, so the head
reads raw inputs as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fusion.reference import fit_reference


@dataclass(frozen=True)
class TextProbe:
    """A fitted probe in the head's terms: ``logits = weight @ t + bias``."""

    weight: np.ndarray  # [C, D]
    bias: np.ndarray  # [C]
    C: float  # the regression's inverse regularisation, chosen on validation
    val_accuracy: float  # on the validation texts it was chosen on

    def describe(self) -> str:
        return f"C={self.C:g}, validation accuracy {self.val_accuracy:.3f}"


def fit_text_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_labels: int,
) -> TextProbe:
    """The regression on pooled text vectors ``train_x`` [N, D], with ``C`` chosen on
    ``val_x``; a class no training text has gets zero weights and the lowest bias."""
    fit = fit_reference(train_x, train_y, val_x, val_y, num_labels)
    scale = fit.scaler.scale_  # [D]
    mean = fit.scaler.mean_
    coef = np.asarray(fit.model.coef_, dtype=np.float64)  # [C_seen, D], or [1, D] for 2 classes
    intercept = np.asarray(fit.model.intercept_, dtype=np.float64)
    classes = np.asarray(fit.model.classes_)
    if len(classes) == 2:  # sklearn's binary form: one decision value for the second class
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    raw = coef / scale  # the standardisation folded in
    shift = intercept - raw @ mean
    weight = np.zeros((num_labels, train_x.shape[1]))
    bias = np.full(num_labels, shift.min() if len(shift) else 0.0)
    weight[classes] = raw
    bias[classes] = shift
    return TextProbe(weight, bias, fit.C, fit.val_accuracy)


def load_probe(head: nn.Linear, probe: TextProbe) -> None:
    """Copy ``probe`` into the first ``D`` input columns of ``head`` (others, e.g. the label
    counts a concat head reads after the text vector, start at zero)."""
    d = probe.weight.shape[1]
    if head.out_features != probe.weight.shape[0] or head.in_features < d:
        raise ValueError(
            f"the probe ({probe.weight.shape[0]} classes x {d}) does not fit the text head "
            f"({head.out_features} x {head.in_features})"
        )
    with torch.no_grad():
        head.weight.zero_()
        head.weight[:, :d] = torch.as_tensor(probe.weight, dtype=head.weight.dtype)
        head.bias.copy_(torch.as_tensor(probe.bias, dtype=head.bias.dtype))
