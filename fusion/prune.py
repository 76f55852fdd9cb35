"""Structured pruning of a merged BERT-style encoder: whole attention heads and FFN rows go.

``torch.nn.utils.prune`` only masks weights (a zeroed tensor of the same shape: the same size on
disk and the same matrix products), so it saves nothing when serving. Here the kept rows and
columns are copied into smaller ``nn.Linear`` modules instead, per layer:

- a head ``h`` of ``d`` dimensions: rows ``h*d:(h+1)*d`` of the query, key and value projections
  and the same columns of the attention output projection; the layer's head count drops;
- an FFN row ``j``: row ``j`` of ``intermediate.dense`` and column ``j`` of ``output.dense``.

Importance, by default data-free from the merged weights: a head scores
``||W_V[h]|| * ||W_O[:, h]||`` (what it can write into the residual stream; query and key only
shape where it looks), an FFN row ``||W_in[j]|| * ||W_out[:, j]||``. Given texts (``kgfuse
export --prune-data FILE``, e.g. the validation file; no labels needed), it is what each unit
really writes on them instead (`activation_scores`): the mean norm over tokens of a head's
output through ``W_O``, of an FFN row's activation times ``||W_out[:, j]||`` (as Wanda, Sun et
al. 2023, scores weights). Each layer drops the same fraction of its lowest-scoring heads and
rows and always keeps at least one of each.

The `PrunePlan` is stored in bundle.json (``prune``): loading builds the encoder from its
``config.json``, shrinks it with `shrink` to the plan's counts, then reads the smaller tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kg.errors import KGFuseError

WEIGHT_NORM = "weight-norm"  # the data-free scoring rule (see the module docstring)
# The amounts `kgfuse export --prune` uses when none is given, chosen on the demo's 61
# validation texts (`bench/export.py --sweep`): the most pruning by weight norms that kept
# validation accuracy and a mean cosine of 0.8 between pruned and unpruned text vectors (accuracy
# alone stayed 1.000 to 75% of both: the demo's KG branch decides its texts).
DEFAULT_HEADS = 0.125
DEFAULT_FFN = 0.25


class PruneError(KGFuseError):
    """A pruning amount or plan is invalid, or the encoder cannot be pruned."""


@dataclass(frozen=True)
class LayerPlan:
    """What one encoder layer keeps: head indices (ascending) and FFN row indices (ascending)."""

    heads: tuple[int, ...]
    ffn: tuple[int, ...]


@dataclass(frozen=True)
class PrunePlan:
    """Per-layer kept heads and FFN rows, and the amounts that asked for them."""

    heads_fraction: float
    ffn_fraction: float
    layers: tuple[LayerPlan, ...]
    importance: str = WEIGHT_NORM  # or "activations on N texts"

    def to_dict(self) -> dict[str, Any]:
        """bundle.json's ``prune``: the head indices each layer keeps, and its FFN row count
        (the rows themselves are in the saved tensors, in their original order)."""
        return {
            "importance": self.importance,
            "heads_fraction": self.heads_fraction,
            "ffn_fraction": self.ffn_fraction,
            "layers": [{"heads": list(p.heads), "ffn_rows": len(p.ffn)} for p in self.layers],
        }


def check_fraction(value: float, option: str) -> float:
    """``value`` if 0 <= value < 1, else a `PruneError` naming ``option``."""
    if not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
        raise PruneError(
            f"{option} must be a fraction with 0 <= f < 1 (the share of each layer's units "
            f"to remove), got {value!r}"
        )
    return float(value)


def encoder_layers(model: nn.Module) -> list[Any]:
    """The transformer layers of a BERT-style encoder (BERT, RoBERTa, MiniLM, ...)."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    parts = ("attention.self.query", "attention.output.dense", "intermediate.dense")
    if layers is None or not all(_has(layer, p) for layer in layers for p in parts):
        raise PruneError(
            f"--prune handles BERT-style encoders (encoder.layer[i].attention.self.query, "
            f"intermediate.dense, ...); {type(model).__name__} is not one: export without --prune"
        )
    return list(layers)


def _has(module: nn.Module, dotted: str) -> bool:
    try:
        module.get_submodule(dotted)
    except AttributeError:
        return False
    return True


Scores = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (heads [n], FFN rows [r])


def plan_pruning(
    model: nn.Module, heads: float, ffn: float, scores: tuple[Scores, str] | None = None
) -> PrunePlan:
    """Which heads and FFN rows each layer of ``model`` keeps after dropping the ``heads`` and
    ``ffn`` fractions that score lowest: by ``scores`` (`activation_scores`, with the name of
    the rule), else by `weight_scores`."""
    heads = check_fraction(heads, "--prune-heads")
    ffn = check_fraction(ffn, "--prune-ffn")
    per_layer, rule = scores if scores is not None else (weight_scores(model), WEIGHT_NORM)
    plans = tuple(LayerPlan(_keep(h, heads), _keep(f, ffn)) for h, f in per_layer)
    return PrunePlan(heads, ffn, plans, rule)


@torch.no_grad()
def weight_scores(model: nn.Module) -> Scores:
    """Data-free importance of each layer's heads and FFN rows (module docstring)."""
    out = []
    for layer in encoder_layers(model):
        attn = layer.attention.self
        n, d = attn.num_attention_heads, attn.attention_head_size
        value = attn.value.weight.view(n, d, -1).flatten(1).norm(dim=1)
        written = layer.attention.output.dense.weight.view(-1, n, d).transpose(0, 1)
        ffn_in = layer.intermediate.dense.weight.norm(dim=1)
        out.append(
            (value * written.flatten(1).norm(dim=1), ffn_in * layer.output.dense.weight.norm(dim=0))
        )
    return out


@torch.no_grad()
def activation_scores(encoder: Any, texts: list[str], batch_size: int = 16) -> Scores:
    """Importance measured on ``texts`` (a `fusion.encoder.TextEncoder`): per layer, the mean
    over real tokens of each head's output norm after ``W_O`` and of each FFN row's absolute
    activation times ``||W_out[:, j]||``."""
    if not texts:
        raise PruneError("--prune-data holds no texts: give a file with at least one text")
    layers = encoder_layers(encoder.model)
    sums = [[torch.zeros(0), torch.zeros(0)] for _ in layers]
    mask: list[torch.Tensor] = []  # the current batch's real tokens, [batch, tokens]

    def record(i: int, part: int, unit: torch.Tensor) -> None:
        total = (unit * mask[0].unsqueeze(-1)).sum((0, 1))  # [units]
        sums[i][part] = total if sums[i][part].numel() == 0 else sums[i][part] + total

    def heads_hook(i: int, layer: Any) -> Any:
        attn, dense = layer.attention.self, layer.attention.output.dense
        n, d = attn.num_attention_heads, attn.attention_head_size
        w = dense.weight.view(-1, n, d)  # [hidden, heads, d]

        def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].view(*args[0].shape[:2], n, d)  # [batch, tokens, heads, d]
            record(i, 0, torch.einsum("btnd,ond->btno", x, w).norm(dim=-1))

        return dense.register_forward_pre_hook(hook)

    def ffn_hook(i: int, layer: Any) -> Any:
        norms = layer.output.dense.weight.norm(dim=0)  # [rows]

        def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            record(i, 1, args[0].abs() * norms)

        return layer.output.dense.register_forward_pre_hook(hook)

    handles = [h(i, layer) for i, layer in enumerate(layers) for h in (heads_hook, ffn_hook)]
    tokens = 0
    try:
        for start in range(0, len(texts), batch_size):
            batch = encoder.tokenize(texts[start : start + batch_size])
            mask[:] = [batch["attention_mask"].to(torch.float32)]
            tokens += int(mask[0].sum())
            encoder.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for handle in handles:
            handle.remove()
    return [(h / tokens, f / tokens) for h, f in sums]


def _keep(scores: torch.Tensor, fraction: float) -> tuple[int, ...]:
    """The indices of the highest-scoring ``1 - fraction`` of ``scores`` (at least one),
    ascending; ties go to the lower index, so a plan is repeatable."""
    n = len(scores)
    kept = max(1, n - int(fraction * n))
    order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    return tuple(sorted(order[:kept]))


def apply_plan(model: nn.Module, plan: PrunePlan) -> nn.Module:
    """Prune ``model`` in place: copy the kept rows and columns into smaller modules."""
    layers = encoder_layers(model)
    _check_depth(plan, len(layers))
    for layer, keep in zip(layers, plan.layers, strict=True):
        attn = layer.attention.self
        d = attn.attention_head_size
        rows = torch.tensor([h * d + i for h in keep.heads for i in range(d)])
        for name in ("query", "key", "value"):
            setattr(attn, name, _select(getattr(attn, name), rows, dim=0))
        layer.attention.output.dense = _select(layer.attention.output.dense, rows, dim=1)
        _set_heads(attn, len(keep.heads))
        ffn = torch.tensor(keep.ffn)
        layer.intermediate.dense = _select(layer.intermediate.dense, ffn, dim=0)
        layer.output.dense = _select(layer.output.dense, ffn, dim=1)
    return model


def shrink(model: nn.Module, stored: dict[str, Any]) -> nn.Module:
    """Resize ``model``'s layers in place to a stored plan's counts (``PrunePlan.to_dict``),
    weights left to be loaded: how a pruned bundle rebuilds its encoder before reading it."""
    layers = encoder_layers(model)
    specs = _stored_layers(stored)
    if len(specs) != len(layers):
        raise PruneError(
            f"the pruning plan describes {len(specs)} layers but the encoder has {len(layers)}; "
            "export the bundle again"
        )
    for layer, (heads, rows) in zip(layers, specs, strict=True):
        attn = layer.attention.self
        width = heads * attn.attention_head_size
        hidden = attn.query.in_features
        for name in ("query", "key", "value"):
            setattr(attn, name, nn.Linear(hidden, width))
        layer.attention.output.dense = nn.Linear(width, hidden)
        _set_heads(attn, heads)
        layer.intermediate.dense = nn.Linear(hidden, rows)
        layer.output.dense = nn.Linear(rows, hidden)
    return model


def _stored_layers(stored: dict[str, Any]) -> list[tuple[int, int]]:
    """(kept heads, kept FFN rows) per layer of bundle.json's ``prune``, checked."""
    layers = stored.get("layers") if isinstance(stored, dict) else None
    out = []
    for spec in layers if isinstance(layers, list) else [None]:
        heads = spec.get("heads") if isinstance(spec, dict) else None
        rows = spec.get("ffn_rows") if isinstance(spec, dict) else None
        if not isinstance(heads, list) or not heads or not isinstance(rows, int) or rows < 1:
            raise PruneError(
                "bundle.json's 'prune' is malformed (each layer needs its kept 'heads' and "
                "'ffn_rows'); export the bundle again"
            )
        out.append((len(heads), rows))
    return out


def load_pruned(folder: Path, stored: dict[str, Any]) -> tuple[Path, Any, nn.Module]:
    """(folder, tokenizer, model) of a pruned encoder folder: built from its config.json,
    shrunk to the plan, then filled from its safetensors (every tensor, of the plan's shape)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = shrink(AutoModel.from_config(config), stored)
    try:
        weights = load_file(str(folder / "model.safetensors"))
        model.load_state_dict(weights, strict=True)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise PruneError(
            f"{folder}: the pruned encoder's weights do not fit its plan ({str(e)[:200]}); "
            "export the bundle again"
        ) from e
    return folder, tokenizer, model.eval()


def _check_depth(plan: PrunePlan, layers: int) -> None:
    if len(plan.layers) != layers:
        raise PruneError(f"the plan has {len(plan.layers)} layers, the encoder {layers}")


def _set_heads(attn: Any, heads: int) -> None:
    """The head count the attention module reports (its forward reshapes by head size)."""
    attn.num_attention_heads = heads
    attn.all_head_size = heads * attn.attention_head_size


def _select(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear with the rows (``dim=0``: outputs) or columns (``dim=1``: inputs) kept."""
    weight = linear.weight.detach().index_select(dim, index)
    bias: torch.Tensor | None = None
    if linear.bias is not None:  # rows take their bias along; columns leave it whole
        bias = linear.bias.detach()[index] if dim == 0 else linear.bias.detach()
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias)
    return out.to(linear.weight.dtype)
