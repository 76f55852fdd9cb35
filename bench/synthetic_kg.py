"""A synthetic KG in the shape of ../shared/data/symptom2disease, at any size (for scale runs).

    graph = kg.load(write_synthetic_kg(Path("/tmp/kg.nt"), 1_000_000))

Entities are "symptoms" (lower-case names of 1-4 words, such as "abdominal pain"; one-word
names drawn evenly from the vocabulary, longer ones Zipf-like) and one in twenty "diseases" (capitalised names, such as "Alcoholic hepatitis"), each with an
``rdfs:label``, a one-sentence ``rdfs:comment``, an ``rdf:type``, and for one in ten a
``skos:altLabel``; about 2% of the names are shared by two entities (ambiguous aliases). Each
disease has 3-12 ``hasSymptom`` edges. Words are drawn Zipf-like from a vocabulary of real
English words (the shared KG's label words) and pronounceable made-up ones, so n-gram and
word statistics look like a real KG's, not like random strings.
"""

from __future__ import annotations

import random
from pathlib import Path

NS = "http://example.org/synthetic/"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_SEED_TEXT = (
    "pain abdominal back belly chest joint knee neck muscle hip stomach skin rash itching "
    "fever high mild cough headache fatigue nausea vomiting dizziness swelling swollen legs "
    "blood stool urine dark yellow eyes red spots nails small dents loss appetite weight gain "
    "balance smell weakness limbs stiff movement sputum phlegm rusty sinus pressure runny "
    "nose throat irritation chills sweating shivering blurred vision depression anxiety"
)
SEED_WORDS = _SEED_TEXT.split(" ")
_ONSETS = tuple(("b c d f g h k l m n p r s t v z br cr dr gl pl pr st tr sp ch sh th").split())
_VOWELS = ("a", "e", "i", "o", "u", "ia", "io", "ea", "ou")
_CODAS = ("", "", "n", "r", "s", "l", "m", "x", "nt", "st", "ng", "rd")


def _word(rng: random.Random) -> str:
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 4))
    ) + rng.choice(_CODAS)


def vocabulary(n_words: int, seed: int = 0) -> list[str]:
    """The seed words, then distinct made-up words, ``n_words`` in all."""
    rng = random.Random(seed)
    words = list(dict.fromkeys(SEED_WORDS))
    seen = set(words)
    while len(words) < n_words:
        w = _word(rng)
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def write_synthetic_kg(path: Path, n_entities: int, seed: int = 0) -> Path:
    """Write an N-Triples KG of ``n_entities`` entities to ``path`` (see the module doc)."""
    rng = random.Random(seed)
    words = vocabulary(max(200, int(n_entities**0.75)), seed)
    cum, total = [], 0.0
    for r in range(len(words)):  # Zipf-like word use
        total += 1.0 / (r + 10)
        cum.append(total)
    names: list[str] = []
    lines: list[str] = []
    diseases: list[int] = []
    for e in range(n_entities):
        disease = e % 20 == 0
        if names and rng.random() < 0.02:
            name = rng.choice(names[-1000:])  # a shared (ambiguous) name
        else:
            n_words = rng.choice((1, 2, 2, 2, 3, 3, 4))
            if n_words == 1:  # a one-word name: any word alike (few share one)
                name = rng.choice(words)
            else:
                name = " ".join(rng.choices(words, cum_weights=cum, k=n_words))
            name = name.capitalize() if disease else name
        names.append(name)
        iri = f"<{NS}{'d' if disease else 's'}{e}>"
        kind = "Disease" if disease else "Symptom"
        lines.append(f"{iri} <{RDF_TYPE}> <{NS}{kind}> .")
        lines.append(f'{iri} <{RDFS}label> "{name}" .')
        lines.append(f'{iri} <{RDFS}comment> "A {kind.lower()} called {name}." .')
        if rng.random() < 0.1:
            alt = " ".join(rng.choices(words, cum_weights=cum, k=rng.choice((1, 2, 3))))
            lines.append(f'{iri} <{SKOS}altLabel> "{alt}" .')
        if disease:
            diseases.append(e)
    for d in diseases:
        for s in rng.sample(range(n_entities), min(n_entities, rng.randint(3, 12))):
            if s != d:
                lines.append(
                    f"<{NS}d{d}> <{NS}hasSymptom> <{NS}{'d' if s % 20 == 0 else 's'}{s}> ."
                )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
