"""Imports run one way: kg <- nlp <- fusion <- api."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["kg", "nlp", "fusion", "api"]


def _imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found |= {n.split(".")[0] for n in names} & set(LAYERS)
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_layers_below_them(layer: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    offenders = {
        str(p.relative_to(REPO)): sorted(_imported_layers(p) - allowed)
        for p in (REPO / layer).rglob("*.py")
        if _imported_layers(p) - allowed
    }
    assert offenders == {}, f"{layer} may import only {sorted(allowed)}"


def test_loading_a_kg_imports_no_web_or_ml_stack() -> None:
    # `import kg` is what kgfuse kg load and every KG benchmark pay before reading a triple
    import subprocess
    import sys

    heavy = ["pydantic", "torch", "transformers", "spacy", "fastapi", "sklearn"]
    code = f"import sys, kg; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
