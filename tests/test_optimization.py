"""The learning-rate schedule, step by step, against transformers' linear warmup schedule."""

from __future__ import annotations

import pytest
import torch
from transformers import get_linear_schedule_with_warmup

from fusion.optimization import make_scheduler


def learning_rates(make: object, steps: int) -> list[float]:
    """The learning rate each of ``steps`` optimizer steps runs at."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    scheduler = make(optimizer)  # type: ignore[operator]
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(("total", "warmup"), [(50, 0.1), (37, 0.3), (10, 0.0), (2, 0.5)])
def test_optimization_schedule_is_transformers_linear_warmup_one_step_ahead(
    total: int, warmup: float
) -> None:
    warm = max(1, int(total * warmup))
    ours = learning_rates(lambda o: make_scheduler(o, total, warmup), total)
    # one step more, for transformers' rate after the last warmup step
    theirs = learning_rates(lambda o: get_linear_schedule_with_warmup(o, warm, total), total + 1)
    assert theirs[0] == 0.0  # transformers' first step would not train at all
    assert ours[:warm] == theirs[1 : warm + 1]  # the warmup, one step ahead, exactly
    assert ours[warm:] == theirs[warm:total]  # then the same linear decay, exactly
    assert ours[warm - 1] == 0.5 and all(0 < lr <= 0.5 for lr in ours)


def test_optimization_schedule_ends_at_zero_past_its_steps() -> None:
    """A run resumed with more epochs than its schedule was made for never steps backwards."""
    rates = learning_rates(lambda o: make_scheduler(o, 10, 0.1), 13)
    assert rates[9] > 0 and rates[10:] == [0.0, 0.0, 0.0]
