"""Abbreviations: "gastroesophageal reflux disease (GERD)" defined in the text, and the test
of whether a short form fits a long form (Schwartz & Hearst, 2003)."""

from __future__ import annotations

from typing import NamedTuple

from spacy.tokens import Doc, Span


class Definition(NamedTuple):
    long_form: Span
    short_form: Span


def is_short_form(text: str) -> bool:
    """2-10 characters, a letter first, at least one capital, no spaces: 'GERD', 'UTIs'."""
    return (
        2 <= len(text) <= 10
        and text[0].isalnum()
        and any(c.isupper() for c in text)
        and " " not in text
        and sum(c.isalpha() for c in text) >= 2
    )


def fits(short: str, long: str) -> bool:
    """Schwartz-Hearst: every character of ``short`` appears in ``long`` in order, scanning
    right to left, and the first one starts a word of ``long``."""
    s, lf = short.lower(), long.lower()
    if len(short) > 2 and short.endswith("s") and short[:-1].isupper():  # plural: "UTIs"
        s = s[:-1]
    si, li = len(s) - 1, len(lf) - 1
    while si >= 0:
        c = s[si]
        if not c.isalnum():
            si -= 1
            continue
        while li >= 0 and (lf[li] != c or (si == 0 and li > 0 and lf[li - 1].isalnum())):
            li -= 1
        if li < 0:
            return False
        si -= 1
        li -= 1
    return len(lf.split()) >= 2 or len(lf) > len(s)


def find_definitions(doc: Doc) -> list[Definition]:
    """'long form (SF)' pairs in ``doc``: the long form is the shortest run of words before the
    parenthesis that the short form fits (at most ``min(len(SF) + 5, 2 * len(SF))`` words)."""
    found = []
    for i, tok in enumerate(doc):
        if tok.text != "(" or i + 2 >= len(doc) or doc[i + 2].text != ")":
            continue
        short = doc[i + 1]
        if not is_short_form(short.text):
            continue
        max_words = min(len(short.text) + 5, 2 * len(short.text))
        for n in range(1, max_words + 1):
            start = i - n
            if start < 0 or (doc[start].is_punct and doc[start].text not in "-/"):
                break
            long = doc[start:i]
            if fits(short.text, long.text) and long[0].text[0].lower() == short.text[0].lower():
                found.append(Definition(long, doc[i + 1 : i + 2]))
                break
    return found
