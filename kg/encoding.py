"""How to make a file UTF-8, judged by its first bytes: every reader of kgfuse (triples, texts,
configs) reads UTF-8 only, and its error says how to convert the file it refused."""

from __future__ import annotations

import codecs

_UTF16_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def recode_hint(start: bytes) -> str:
    """The fix for a file that is not UTF-8 and starts with ``start``: a UTF-16 byte-order mark
    (Windows' "Unicode" text, Excel's "Unicode Text") needs converting from UTF-16, which the
    usual Latin-1 advice would turn into text full of NUL characters."""
    if start[:2] in _UTF16_MARKS:
        return (
            "it is UTF-16 (it starts with a UTF-16 byte-order mark): re-encode it as UTF-8, "
            "e.g. `iconv -f utf-16 -t utf-8 IN > OUT`"
        )
    return "re-encode it as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"
