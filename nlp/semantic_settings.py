"""The settings of semantic candidates (the ``semantic`` option of the `kg_linker`): their
names, defaults and checks. Kept apart from nlp/semantic.py so the linker can check a
configuration without loading the scoring code."""

from __future__ import annotations

from typing import Any

MODES = ("static", "hybrid", "full")
# Thresholds picked on the 1,100 non-gold symptom2disease texts (see the module's report).
DEFAULT_THRESHOLDS = {"static": 0.70, "hybrid": 0.75, "full": 0.75}
DEFAULT_PARTIAL_THRESHOLD = 0.80
# The keyword arguments of `SemanticCandidates` a configuration may set.
CONFIG_KEYS = (
    *("mode", "threshold", "partial_threshold", "prefilter", "max_encoded", "max_words"),
    *("margin", "max_entities", "length_penalty", "cache_dir", "encoder_dir", "vocabulary"),
    "encoder",
)


def config_problems(config: dict[str, Any]) -> list[str]:
    """What is wrong with ``config`` (keyword arguments of `SemanticCandidates`), one message
    per problem; empty when it is fine."""
    problems = []
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        problems.append(f"unknown option(s) {unknown}; expected some of {list(CONFIG_KEYS)}")
    mode = config.get("mode", "static")
    if mode not in MODES:
        problems.append(f"'mode' must be one of {list(MODES)} (got {mode!r})")
    for name in ("threshold", "partial_threshold", "prefilter"):
        if name not in config:
            continue
        value = config[name]
        if value is None and name != "threshold":
            problems.append(f"'{name}' must be a cosine in [-1, 1] (got None)")
        elif value is not None and not (_is_number(value) and -1.0 <= value <= 1.0):
            problems.append(f"'{name}' must be a cosine in [-1, 1] (got {value!r})")
    for name in ("max_words", "max_entities"):
        value = config.get(name, 1)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            problems.append(f"'{name}' must be an integer of at least 1 (got {value!r})")
    max_encoded = config.get("max_encoded")
    if max_encoded is not None and not (isinstance(max_encoded, int) and max_encoded >= 0):
        problems.append(f"'max_encoded' must be None or an integer >= 0 (got {max_encoded!r})")
    for name in ("margin", "length_penalty"):
        value = config.get(name, 0.0)
        if not (_is_number(value) and value >= 0):
            problems.append(f"'{name}' must be a number >= 0 (got {value!r})")
    encoder = config.get("encoder")
    if encoder is not None and not callable(encoder):
        problems.append(f"'encoder' must be callable: texts -> unit vectors (got {encoder!r})")
    vocabulary = config.get("vocabulary")
    if vocabulary is not None and (
        isinstance(vocabulary, str) or not all(isinstance(w, str) for w in vocabulary)
    ):
        problems.append("'vocabulary' must be a list of words")
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
