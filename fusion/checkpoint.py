"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder holds the trainable weights, the best weights so far, the optimizer's
state (flattened to named tensors), and ``state.json`` (epoch, step, best score, scheduler
position, random-generator states). It is written atomically at the end of every epoch, so an
interrupted run resumes from the last finished epoch with the same data order.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kg.errors import KGFuseError
from kg.files import atomic_directory, read_json


class CheckpointError(KGFuseError):
    """A checkpoint folder that cannot be resumed from (damaged, or edited by hand)."""


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that training changes (the frozen base encoder is rebuilt, not stored)."""
    return {
        n: p.detach().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad
    }


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(
            f"weights do not fit the model: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    model.load_state_dict(state, strict=False)


def _optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.contiguous()
            else:
                plain[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    best: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    from safetensors.torch import save_file

    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    numpy_state: Any = np.random.get_state()  # the legacy (name, keys, pos, ...) tuple
    rng = {
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy": numpy_state[1].tolist(),
        "numpy_pos": int(numpy_state[2]),
    }
    with atomic_directory(folder) as tmp:
        save_file(trainable_state(model), str(tmp / "weights.safetensors"))
        save_file(best, str(tmp / "best.safetensors"))
        save_file(opt_tensors or {"_empty": torch.zeros(0)}, str(tmp / "optimizer.safetensors"))
        save_file({"torch": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
        payload = {"state": state, "optimizer": opt_meta, "rng": rng}
        (tmp / "state.json").write_text(json.dumps(payload) + "\n", encoding="utf-8")


def checkpoint_state(folder: Path) -> dict[str, Any] | None:
    """The training state of a checkpoint folder, or None when there is none.

    Raises:
        CheckpointError: ``state.json`` is there but unreadable, naming it and the fix.
    """
    path = folder / "state.json"
    if not path.is_file():
        return None
    payload = read_json(path, CheckpointError, _fresh_start(folder))
    state = payload.get("state") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no training state; {_fresh_start(folder)}")
    return state


def _fresh_start(folder: Path) -> str:
    return f"delete {folder} to train afresh (the interrupted run's epochs are lost)"


def load_checkpoint(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore weights, optimizer and RNGs; returns (best weights, training state).

    Raises:
        CheckpointError: a file of ``folder`` is missing, damaged or does not fit the model.
    """
    from safetensors import SafetensorError

    try:
        return _load_checkpoint(folder, model, optimizer)
    except (OSError, ValueError, KeyError, TypeError, IndexError, SafetensorError) as e:
        raise CheckpointError(
            f"cannot resume from {folder} ({type(e).__name__}: {e}); {_fresh_start(folder)}"
        ) from e


def _load_checkpoint(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors.torch import load_file

    payload = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    load_trainable_state(model, load_file(str(folder / "weights.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key == "_empty":
            continue
        index, name = key.split(".", 1)
        opt_state.setdefault(int(index), {})[name] = value
    for key, value in payload["optimizer"]["plain"].items():
        index, name = key.split(".", 1)
        opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(
        {"state": opt_state, "param_groups": payload["optimizer"]["param_groups"]}
    )
    rng = payload["rng"]
    random.setstate((3, tuple(rng["python"]), rng["python_pos"]))
    np.random.set_state(
        ("MT19937", np.asarray(rng["numpy"], dtype=np.uint32), rng["numpy_pos"], 0, 0.0)
    )
    torch.set_rng_state(load_file(str(folder / "rng.safetensors"))["torch"])
    return load_file(str(folder / "best.safetensors")), payload["state"]
