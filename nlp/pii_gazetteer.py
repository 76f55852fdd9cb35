"""The word lists the person-name finder reads, all shipped by installed packages (nothing is
downloaded): given names and surnames, and the English words that are not names.

- Given names and surnames: the US census lists of the ``names`` package (1990 census: 5,494
  given names, the 30,000 most common of its 88,799 surnames), plus a short list written here of
  common given names and surnames of other countries, which the US lists lack, less the
  nationalities, days and months the given-name list holds ("German", "August").
- Common words: lower-case English words from spacy-lookups-data's word probabilities that are
  frequent (log probability over -16) and written in lower case more often than capitalised:
  "Will", "Hope" and "Brown" are names, but as often words, so they need more evidence.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

from spacy.lang.en.stop_words import STOP_WORDS

SURNAMES_KEPT = 30_000  # of the census list, by frequency: rarer ones are mostly noise
COMMON_WORD_LOGPROB = -16.0

# Given names and surnames common outside the US, which its 1990 census lists lack.
EXTRA_GIVEN = set(
    """
    aarav abdul abdullah adebayo adeola aditya ahmad ahmed aiko aisha akira ali amara amina
    anika anjali arjun asif ayaan ayesha bilal bogdan chidi chiara chinedu dmitri dmitry emeka
    fatima fatuma farah giulia giuseppe hamza hana hannah haruto hassan hiroshi hussein ibrahim
    ifeoma ines ingrid jiho jin joao jorge jurgen kaito kamala kenji khalid kofi kwame lakshmi
    lars leila li liang lin lucia luca malik mariam mateo matteo mehmet mei min ming mohamed
    mohammed muhammad nadia naveen nikhil ngozi noor olga oluwaseun omar pablo pedro pooja
    priya rahul raj rajesh ravi rohan sakura santiago sanjay seo shreya sigrid sofia sven
    takeshi tariq thabo tomasz vikram wei xin xiao yan yara yasmin yuki yusuf zainab zhang zoltan
    """.split()
)
EXTRA_SURNAMES = set(
    """
    abe adeyemi agarwal ahmed al-rashid alvarez banerjee bauer becker chatterjee chen cheng
    dubois fischer fernandes gupta haddad hashemi hoffmann huang iyer kaur khan kowalski
    kumar lefebvre li lin liu mehta meyer moreau mueller muller nakamura nguyen novak
    nowak obi okafor okonkwo olsen patel petrov rahman rao reddy rossi sato schmidt schneider
    shah sharma singh suzuki takahashi tanaka van wagner wang watanabe weber wu yamamoto yang
    zhang zhao zhou
    """.split()
)
# Capitalised words in the census given-name list that are more often not names: nationalities,
# languages, days, months, holidays ("a German keyboard", "since Sunday").
NOT_GIVEN = frozenset(
    """
    american british english german french spanish italian dutch swedish danish norwegian
    finnish polish russian chinese japanese korean indian irish scottish welsh canadian
    australian mexican brazilian african european asian turkish greek arabic portuguese
    christian monday tuesday wednesday thursday friday saturday sunday january february march
    april may june july august september october november december christmas easter
    """.split()
)
# Words inside names: "Ludwig van Beethoven", "Maria de la Cruz", "Omar bin Laden".
PARTICLES = frozenset("van von der de del della di da la le du bin ibn al el dos das ter".split())
HONORIFICS = frozenset(
    "mr mrs ms miss mx dr prof professor sir madam madame dame lord lady mister herr frau "
    "monsieur mme mlle señor senor señora senora sr sra rev fr".split()
)


def _census(name: str) -> list[str]:
    import names

    path = Path(names.__file__).parent / name
    return [line.split()[0].lower() for line in path.read_text().splitlines() if line.strip()]


@cache
def given_names() -> frozenset[str]:
    census = frozenset(_census("dist.male.first") + _census("dist.female.first"))
    return (census | EXTRA_GIVEN) - NOT_GIVEN - STOP_WORDS  # the census lists hold "My", "In"


@cache
def surnames() -> frozenset[str]:
    return (frozenset(_census("dist.all.last")[:SURNAMES_KEPT]) | EXTRA_SURNAMES) - STOP_WORDS


@cache
def common_words() -> frozenset[str]:
    """Lower-case English words more often written in lower case than capitalised, and the
    stop words (about 45,000 in all)."""
    import spacy_lookups_data

    path = Path(spacy_lookups_data.__file__).parent / "data" / "en_lexeme_prob.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        prob: dict[str, float] = json.load(f)
    return frozenset(
        w
        for w, p in prob.items()
        if p > COMMON_WORD_LOGPROB and w.isalpha() and w.islower() and p > prob.get(w.title(), -99)
    ) | frozenset(STOP_WORDS)
