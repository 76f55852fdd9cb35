"""Person names without a trained model: the spaCy component ``kgfuse_person_names``.

It reads the tokens of any English pipeline (a blank one is enough) and marks as ``PERSON``, in
``doc.spans["pii"]``:

- a name after an honorific: "Dr. Amara Obi", "Mr Grant";
- a name after a cue: "my name is ...", "I'm ...", "this is ...", "ask for ...", and a
  signature: "Thanks, Ravi", "Regards,\\nMaria Lopez", "- Tom";
- a given name from the gazetteer (`nlp.pii_gazetteer`) followed by capitalised words: "Maria
  Gonzalez", "Wei Zhang", "Ludwig van Beethoven"; a given name alone when it is not also a common
  English word ("Sarah called", but not "Will it work");
- an initial and a surname: "J. Smith".

Without a cue, words followed by a number or a model code are a product, not a person ("Marlo
410", "Kyra K9").

It misses names it has no evidence for: a single surname ("Smith said"), a name that is neither
in the gazetteer nor after a cue ("Ngata Wirihana called"), and lower-case names. A trained NER
pipeline (``--spacy-model``) adds its own PERSON spans on top.
"""

from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from nlp.pii_gazetteer import HONORIFICS, PARTICLES, common_words, given_names, surnames

SPANS_KEY = "pii"
# Word sequences, lower-cased, after which the next capitalised words are a name.
CUES = (
    ("my", "name", "is"),
    ("name", "is"),
    ("name", ":"),
    ("i", "am"),
    ("i", "'m"),
    ("this", "is"),
    ("it", "'s"),
    ("ask", "for"),
    ("signed",),
    ("named",),
    ("called",),
    ("contact",),
    ("patient",),
    ("customer",),
    ("dear",),
    ("hi",),
    ("hello",),
)
SIGN_OFFS = frozenset(
    "thanks thank regards cheers sincerely best yours love warmly respectfully br".split()
)
# After these, the first word must also look like a name ("I'm Jamal", not "I'm Happy").
WEAK_CUES = frozenset(
    {("i", "am"), ("i", "'m"), ("this", "is"), ("it", "'s"), ("contact",), ("hi",)}
    | {("hello",), ("called",), ("patient",), ("customer",)}
)
DASHES = frozenset({"-", "\u2013", "\u2014"})


def _capitalised(token: Token) -> bool:
    """A word written like a name: "Maria", "O'Brien", "McDonald", "Al-Rashid", "Zoë"."""
    text = token.text
    if len(text) < 2 or not text[0].isupper() or text.isupper():
        return False
    return all(c.isalpha() or c in "'-\u2019" for c in text) and any(c.islower() for c in text)


def _model_number(doc: Doc, end: int) -> bool:
    """A number or a model code follows: "Marlo 410", "Tess 16 Pro", "Kyra K9" name products,
    not people."""
    if end >= len(doc):
        return False
    token = doc[end]
    return token.like_num or (any(c.isdigit() for c in token.text) and token.text.isalnum())


class PersonNames:
    """Marks person names in ``doc.spans["pii"]`` (see the module docstring for the rules)."""

    def __init__(self) -> None:
        self.given = given_names()
        self.surnames = surnames()
        self.common = common_words()

    def is_common(self, token: Token) -> bool:
        return token.lower_ in self.common

    def is_given(self, token: Token) -> bool:
        return _capitalised(token) and token.lower_ in self.given

    def is_namey(self, token: Token) -> bool:
        """Capitalised and not a common word: "Raghunathan", "Tanaka"."""
        return _capitalised(token) and not self.is_common(token)

    def __call__(self, doc: Doc) -> Doc:
        found: list[Span] = []
        i = 0
        while i < len(doc):
            end = self._name_at(doc, i)
            if end > i:
                found.append(Span(doc, i, end, label="PERSON"))
                i = end
            else:
                i += 1
        doc.spans[SPANS_KEY] = [*doc.spans.get(SPANS_KEY, []), *found]
        return doc

    def _name_at(self, doc: Doc, i: int) -> int:
        """The end of a name that starts at token ``i``, or ``i`` when none does."""
        token = doc[i]
        if not _capitalised(token) or token.lower_ in HONORIFICS:
            return i
        cue = self._cue_before(doc, i)
        if cue is not None:
            if cue in WEAK_CUES and not (self.is_given(token) or self.is_namey(token)):
                return i
            return self._extend(doc, i, any_capitalised=True)
        if self.is_given(token):
            end = self._extend(doc, i, any_capitalised=False, surnames=not self.is_common(token))
            if (end > i + 1 or not self.is_common(token)) and not _model_number(doc, end):
                return end
            return i
        if len(token) >= 2 and self._initial_surname(doc, i):
            return i + 1
        nxt = doc[i + 1] if i + 1 < len(doc) else None
        if (
            nxt is not None
            and self.is_namey(token)
            and self.is_namey(nxt)
            and (token.lower_ in self.given or nxt.lower_ in self.surnames)
        ):
            end = self._extend(doc, i, any_capitalised=False)
            return i if _model_number(doc, end) else end
        return i

    def _initial_surname(self, doc: Doc, i: int) -> bool:
        """Token ``i`` is a surname after an initial: "J. Smith", "J Smith"."""
        j = i - 1
        if j >= 0 and doc[j].text == ".":
            j -= 1
        initial = doc[j].text.rstrip(".") if j >= 0 else ""
        if len(initial) != 1 or not initial.isupper():
            return False
        return doc[i].lower_ in self.surnames and self.is_namey(doc[i])

    def _cue_before(self, doc: Doc, i: int) -> tuple[str, ...] | None:
        """The cue or honorific that ends just before token ``i``, if any."""
        j = i - 1
        if j >= 0 and doc[j].text == ".":
            j -= 1
        if j >= 0 and doc[j].lower_ in HONORIFICS:
            return ("honorific",)
        j = i - 1
        while j >= 0 and (doc[j].is_space or doc[j].text in {",", *DASHES}):
            j -= 1
        if i > 0 and j >= 0 and doc[j].lower_ in SIGN_OFFS and j < i - 1:
            return ("sign-off",)
        if j < 0 and i > 0 and doc[i - 1].text in DASHES:
            return ("sign-off",)
        words = [t.lower_ for t in doc[max(0, i - 3) : i]]
        for cue in CUES:
            if tuple(words[-len(cue) :]) == cue:
                return cue
        return None

    def _extend(self, doc: Doc, i: int, any_capitalised: bool, surnames: bool = True) -> int:
        """The end of the name starting at ``i``: up to 3 more capitalised words (or particles
        followed by one). After a cue any capitalised word continues it; else a word that is
        not common, or (with ``surnames``) a surname that is also a word ("Maria Brown", but
        not "Grant Street")."""
        end, words = i + 1, 1
        while end < len(doc) and words < 4:
            token = doc[end]
            if token.lower_ in PARTICLES and end + 1 < len(doc) and _capitalised(doc[end + 1]):
                end += 1
                continue
            ok = _capitalised(token) and (
                any_capitalised
                or not self.is_common(token)
                or (surnames and token.lower_ in self.surnames)
            )
            if not ok:
                break
            end, words = end + 1, words + 1
        while end > i + 1 and doc[end - 1].lower_ in PARTICLES:
            end -= 1
        return end


@Language.factory("kgfuse_person_names", assigns=["doc.spans"])
def make_person_names(nlp: Language, name: str) -> PersonNames:
    return PersonNames()
