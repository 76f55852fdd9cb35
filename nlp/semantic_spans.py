"""Which word n-grams of a text may name a symptom-like KG entity: the candidate spans that
semantic candidates (nlp/semantic.py) and alias learning (nlp/alias_learning.py) score.

A span holds 1..``max_words`` words, crosses no punctuation, coordination or covered word, holds
a content word, and has no function word at either end, except a leading negation ("can't
smell", "no sense of smell") and a trailing particle ("throwing up", "worn out"); verbs of
having a symptom ("feeling", "experiencing", "developed") never open a span.
"""

from __future__ import annotations

import re

from nlp.keys import FUNCTION_WORDS

NEGATIONS = frozenset({"no", "not", "never", "cannot", "without", "n't", "n\u2019t"})
# Auxiliaries that may open a span when a negation follows ("ca n't smell", "do n't feel").
NEG_AUX = frozenset({"ca", "can", "do", "does", "did", "could", "wo", "would", "is", "am", "are"})
# Coordinations end spans: "hands and feet", "nose and throat" list things, not one symptom.
BREAKS = frozenset({"and", "or"})
PARTICLES = frozenset({"up", "out", "off", "down"})  # may close a span ("throwing up")
# Verbs of having a symptom: they never open a span ("feeling dizzy" -> "dizzy").
EXPERIENCE_VERBS = frozenset(
    {
        *("feel", "feels", "feeling", "felt"),
        *("experience", "experiences", "experiencing", "experienced"),
        *("develop", "develops", "developing", "developed"),
        *("get", "gets", "getting", "got"),
        *("suffer", "suffers", "suffering", "suffered"),
        *("notice", "notices", "noticing", "noticed"),
        *("start", "starts", "starting", "started"),
        *("seem", "seems", "seemed"),
    }
)
ALNUM = re.compile(r"[^\W_]")  # a letter or digit: the word is not punctuation
WORD = re.compile(r"^[^\W\d_]{2,}$")  # a word of two or more letters


def candidate_spans(words: list[str], covered: list[bool], max_words: int) -> list[tuple[int, int]]:
    """(start, end) word ranges of 1..``max_words`` words that may name a symptom-like entity
    (rule 1 of the module docstring): no punctuation, coordination or ``covered`` word inside,
    a content word inside, no function word at either end except a leading negation ("can't
    smell") and a trailing particle ("throwing up"); verbs of having a symptom never open one."""
    n = len(words)
    low = [w.lower() for w in words]
    usable = [
        not covered[i] and ALNUM.search(words[i]) is not None and low[i] not in BREAKS
        for i in range(n)
    ]
    content = [WORD.match(w) is not None and w not in FUNCTION_WORDS for w in low]
    out = []
    for a in range(n):
        if not usable[a]:
            continue
        opens = (content[a] and low[a] not in EXPERIENCE_VERBS) or low[a] in NEGATIONS
        if not opens and low[a] in NEG_AUX and a + 1 < n and low[a + 1] in NEGATIONS:
            opens = True
        if not opens:
            continue
        has_content = False
        for b in range(a + 1, min(a + max_words, n) + 1):
            if not usable[b - 1]:
                break
            has_content = has_content or content[b - 1]
            if has_content and (content[b - 1] or (b - 1 > a and low[b - 1] in PARTICLES)):
                out.append((a, b))
    return out


def detokenize(words: list[str]) -> str:
    """Words back into text for the encoder: "ca n't smell" -> "can't smell"."""
    return re.sub(" (n['\u2019]t)\\b", r"\1", " ".join(words))
