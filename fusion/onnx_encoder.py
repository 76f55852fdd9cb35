"""The text encoder on ONNX Runtime (``kgfuse export --onnx``), an optional serving speed-up.

`export_onnx` writes the encoder (LoRA already merged) as ``encoder.onnx`` with dynamic batch
and sequence axes: input ids and attention mask in, the last hidden state out. `use_onnx`
swaps a loaded `TextEncoder`'s Hugging Face model for an ONNX Runtime session of that file, so
tokenizing, length bucketing and pooling stay where they are and only the transformer runs
elsewhere. The heads (graph encoder, fusion) stay in PyTorch, so explanations work as before:
they take gradients through the graph, never through the text encoder.

ONNX Runtime is an optional dependency: ``pip install onnxruntime onnx``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fusion.encoder import EncoderError, TextEncoder

ONNX_FILE = "encoder.onnx"
OPSET = 17
INSTALL = "pip install onnxruntime onnx"


def require(module: str) -> Any:
    """Import ``module`` (onnx or onnxruntime), or raise `EncoderError` naming the pip command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise EncoderError(
            f"the ONNX text encoder needs the package {module}, which is not installed: "
            f"`{INSTALL}` (or serve the plain or --int8 export instead)"
        ) from e


class _LastHidden(nn.Module):
    """``(input_ids, attention_mask) -> last_hidden_state``: what the export traces."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def export_onnx(encoder: TextEncoder, path: str | Path) -> Path:
    """Write ``encoder``'s transformer (merge LoRA first) to ``path`` as ONNX.

    Raises:
        EncoderError: onnx is not installed (naming the pip command).
    """
    require("onnx")  # the TorchScript exporter writes through it
    path = Path(path)
    example = encoder.tokenize(["an example text to trace", "and a shorter one"])
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns that transformers' mask code turns shapes into Python values; for an
        # encoder they are constants (no cache, no causal mask), and other lengths are tested
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            _LastHidden(encoder.model).eval(),
            (example["input_ids"], example["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "last_hidden_state": {0: "batch", 1: "tokens"},
            },
            opset_version=OPSET,
            dynamo=False,  # the dynamo exporter needs onnxscript; this one needs only onnx
        )
    return path


class _Output:
    """The part of a Hugging Face model output that `TextEncoder` reads."""

    def __init__(self, last_hidden_state: torch.Tensor):
        self.last_hidden_state = last_hidden_state


class OnnxTransformer(nn.Module):
    """An ONNX Runtime session that answers like the Hugging Face model it was exported from.

    Args:
        path: ``encoder.onnx``.
        threads: intra-op threads (default: torch's, so ``kgfuse serve --threads`` holds).

    Shapes:
        input_ids, attention_mask: [batch, tokens] -> last_hidden_state [batch, tokens, hidden]
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__()
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # threads that spin while they wait steal the cores that the server's other work needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types for a bad file
            raise EncoderError(f"cannot load the ONNX encoder {path}: {e}") from e

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> _Output:
        (hidden,) = self.session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()},
        )
        return _Output(torch.from_numpy(hidden))

    def __repr__(self) -> str:
        return f"OnnxTransformer({self.path.name}, threads={self.session.get_session_options().intra_op_num_threads})"


def use_onnx(encoder: TextEncoder, path: str | Path) -> None:
    """Run ``encoder``'s transformer on ONNX Runtime from ``path`` (its PyTorch weights go)."""
    encoder.model = OnnxTransformer(path)
