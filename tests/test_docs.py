"""The docs name only what exists: every file and Python name that docs/architecture.md cites
(and every Python file the README cites) is in the repository, so a rename or a deleted module
cannot leave the pages pointing at nothing.

Names are checked by reading the source (ast), not by importing it: no torch, no model."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURE = REPO / "docs" / "architecture.md"
PACKAGES = ("kg", "nlp", "fusion", "api")
FOLDERS = (*PACKAGES, "bench", "tests", "docs", "examples", "configs")

# `kg/subgraph.py`, `tests/test_fuzz_*.py`, `configs/demo.yaml`: a file of the repository
FILE = re.compile(rf"(?<![\w./])(?:{'|'.join(FOLDERS)})/[\w./*-]*\w\.(?:py|md|yaml|json)\b")
# `kg.paths.top_k_paths`, `fusion.setup.Workspace.open`, `api.app.create_app(settings)`
DOTTED = re.compile(rf"^(?:{'|'.join(PACKAGES)})(?:\.\w+)+")
# `Resources.prepare`, `Graph.compiled`: a member of a class defined in one of the packages
MEMBER = re.compile(r"^([A-Z]\w*)\.(\w+)")


def _code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def _missing_files(text: str) -> list[str]:
    return sorted({f for f in FILE.findall(text) if not any(REPO.glob(f))})


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _module_file(parts: list[str]) -> Path | None:
    base = REPO.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _members(node: ast.ClassDef | ast.Module) -> dict[str, ast.AST]:
    """Names a module or class body defines: functions, classes, assignments and imports."""
    names: dict[str, ast.AST] = {}
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = stmt
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names[stmt.target.id] = stmt
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                names[alias.asname or alias.name] = stmt
    return names


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` (``package.module.Name.member``) is defined in the source."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = _module_file(parts[:cut])
        if module is not None:
            return _defines(_tree(module), parts[cut:])
    return False


def _defines(scope: ast.Module | ast.ClassDef, names: list[str]) -> bool:
    if not names:
        return True
    found = _members(scope).get(names[0])
    if isinstance(found, ast.ImportFrom) and found.module and found.level == 0:
        original = next(a.name for a in found.names if (a.asname or a.name) == names[0])
        return resolves(".".join([found.module, original, *names[1:]]))
    if found is not None and len(names) == 1:
        return True
    return isinstance(found, ast.ClassDef) and _defines(found, names[1:])


@cache
def _classes() -> dict[str, list[ast.ClassDef]]:
    """Every class of the packages, by name."""
    out: dict[str, list[ast.ClassDef]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(_tree(path)):
                if isinstance(node, ast.ClassDef):
                    out.setdefault(node.name, []).append(node)
    return out


def _is_member(cls: str, member: str) -> bool:
    return any(member in _members(node) for node in _classes().get(cls, []))


def _missing_names(text: str) -> list[str]:
    missing = set()
    for span in _code_spans(text):
        if dotted := DOTTED.match(span):
            found, name = resolves(dotted.group(0)), dotted.group(0)
        elif member := MEMBER.match(span):
            found, name = _is_member(*member.groups()), member.group(0)
        else:
            continue
        if not found:
            missing.add(name)
    return sorted(missing)


def test_docs_architecture_cites_only_files_that_exist() -> None:
    missing = _missing_files(ARCHITECTURE.read_text(encoding="utf-8"))
    assert missing == [], f"docs/architecture.md cites files that do not exist: {missing}"


def test_docs_architecture_cites_only_names_that_exist() -> None:
    missing = _missing_names(ARCHITECTURE.read_text(encoding="utf-8"))
    assert missing == [], (
        f"docs/architecture.md cites names that are not defined: {missing}; "
        "rename them on the page, or restore them in the code"
    )


def test_docs_readme_cites_only_python_files_that_exist() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [f for f in _missing_files(text) if f.endswith(".py")]
    assert missing == [], f"README.md cites Python files that do not exist: {missing}"


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("`kg/subgraph.py` and `kg/no_such_file.py`", ["kg/no_such_file.py"]),
        ("the bundle (fusion/manifest.py) and tests/test_fuzz_*.py", []),
        ("`../shared/data/pokedex/kg.ttl`", []),
    ],
)
def test_docs_check_finds_files_that_do_not_exist(text: str, missing: list[str]) -> None:
    assert _missing_files(text) == missing


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("`kg.paths.top_k_paths` and `kg.paths.no_such_function`", ["kg.paths.no_such_function"]),
        (
            "`fusion.setup.Workspace.open` and `fusion.setup.Workspace.nope`",
            ["fusion.setup.Workspace.nope"],
        ),
        ("`api.app.create_app(settings)`", []),
        ("`kg.Graph.subgraph` (re-exported) and `kg.Graph.nope`", ["kg.Graph.nope"]),
        ("`kg.no_such_module.Thing`", ["kg.no_such_module.Thing"]),
        (
            "`Resources.prepare` and `Resources.nope` and `NoSuchClass.x`",
            ["NoSuchClass.x", "Resources.nope"],
        ),
        ("`kgfuse config keys` and `get_linear_schedule_with_warmup`", []),
    ],
)
def test_docs_check_finds_names_that_do_not_exist(text: str, missing: list[str]) -> None:
    assert _missing_names(text) == missing
