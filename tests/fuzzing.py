"""Strategies and the one property shared by the fuzz tests (tests/test_fuzz_*.py).

The property: a parser handed anything either parses it or raises kgfuse's own error
(`KGFuseError`) with a message; never another exception type, which the CLI would show as a
traceback and the API as a 500. The drawn input mixes arbitrary Unicode (lone surrogates
included, written to files as the bytes ``surrogatepass`` gives, i.e. invalid UTF-8), the
characters each syntax gives meaning to, huge numbers and deep nesting.

Profiles (tests/conftest.py): ``kgfuse`` (default: derandomized, few examples, so ``make test``
is repeatable and fast) and ``fuzz`` (random, many examples: ``make fuzz``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from kg.errors import KGFuseError

SYNTAX = [
    *"\"'<>[](){}@^_:;,.#\\/?&=*!%$|-+~`\t\n\r\x00 ",
    '"""',
    "'''",
    "^^",
    "_:b",
    "@prefix",
    "@base",
    "PREFIX",
    "GRAPH",
    "=>",
    "<=",
    "\\u",
    "\\U0010FFFF",
    "\\uD800",
    "\\x",
    '{"@id":',
    '"@context"',
    '"@value"',
    '"@list"',
    "@type",
    "<!DOCTYPE",
    "<!ENTITY",
    "<![CDATA[",
    "&amp;",
    "&#0;",
    "&#xD800;",
    "&x;",
    "rdf:",
    "xml:lang",
    "\ufeff",
    "\u2028",
    "\u202e",
    "\U0001f600",
    "e\u0301",
]
HUGE_NUMBERS = [
    "1" + "0" * 5000,
    "-" + "9" * 5000,
    "1e999999",
    "-1e-999999",
    "1E309",
    "0x" + "f" * 500,
    "NaN",
    "Infinity",
    "-0",
    "1." + "1" * 5000,
    "9" * 4301,
    str(2**64),
    str(-(2**63) - 1),
]

# Any code point, surrogates drawn as often as the rest, plus syntax tokens.
CHAR = st.one_of(
    st.characters(exclude_categories=[]),
    st.characters(categories=["Cs"]),
    st.sampled_from([c for c in SYNTAX if len(c) == 1]),
)
TEXT = st.text(CHAR, max_size=40)
FRAGMENT = st.one_of(TEXT, st.sampled_from(SYNTAX), st.sampled_from(HUGE_NUMBERS))


def encode(text: str) -> bytes:
    """UTF-8, with lone surrogates written as the invalid bytes a careless writer produces."""
    return text.encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, seed: str, max_edits: int = 4) -> str:
    """``seed`` with a few fragments inserted, slices deleted or replaced, or lines repeated."""
    text = seed
    for _ in range(draw(st.integers(1, max_edits))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 30)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        if op == "insert":
            text = text[:i] + draw(FRAGMENT) + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        elif op == "replace":
            text = text[:i] + draw(FRAGMENT) + text[j:]
        else:
            text = text[:i] + text[i:j] * draw(st.integers(2, 50)) + text[j:]
    return text


def json_values(max_leaves: int = 20, huge: bool = False) -> st.SearchStrategy[Any]:
    """JSON-like values: arbitrary strings (surrogates too), odd numbers, nesting.

    Args:
        huge: also integers of 5,000 digits, which Python can neither print nor read back
            (``json.dumps`` and ``yaml.safe_dump`` refuse them): for values handed over as
            objects, not text.
    """
    big = st.sampled_from([-(10**400), 2**64])
    if huge:  # built, not listed: hypothesis cannot print a 5,000-digit integer either
        big = st.one_of(big, st.builds(pow, st.just(10), st.just(5000)))
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        big,
        st.floats(allow_nan=True, allow_infinity=True),
        TEXT,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def nested_json(depth: int, leaf: str = "1") -> str:
    """``depth`` nested JSON arrays and objects around ``leaf``."""
    half = depth // 2
    return '{"a":' * half + "[" * (depth - half) + leaf + "]" * (depth - half) + "}" * half


def parses_or_refuses(call: Callable[[], object]) -> object | None:
    """Run ``call``; a `KGFuseError` must carry a message. Any other exception propagates (and
    fails the test) with the drawn input shown by hypothesis."""
    try:
        return call()
    except KGFuseError as e:
        assert str(e).strip(), f"{type(e).__name__} without a message"
        return None
