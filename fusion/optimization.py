"""What the training loop steps with: the optimizer, its schedule, class weights, a progress bar."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import torch

from fusion.config import RunConfig
from fusion.model import FusionClassifier
from fusion.resources import Prepared


def make_optimizer(model: FusionClassifier, config: RunConfig) -> torch.optim.Optimizer:
    encoder_ids = (
        {id(p) for p in model.text_encoder.parameters()}
        if model.text_encoder is not None
        else set()
    )
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) in encoder_ids], "lr": config.train.lora_lr},
        {"params": [p for p in params if id(p) not in encoder_ids], "lr": config.train.lr},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], weight_decay=config.train.weight_decay
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def class_weights(examples: Sequence[Prepared], num_labels: int) -> torch.Tensor:
    counts = np.bincount([p.label for p in examples], minlength=num_labels).astype(np.float64)
    weights = counts.sum() / np.maximum(counts, 1) / num_labels
    return torch.as_tensor(weights, dtype=torch.float32)


class Progress:
    """A rich progress bar on terminals; silent otherwise (CI logs, tests)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self.bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("training", total=total)

    def update(self, description: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=description)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
