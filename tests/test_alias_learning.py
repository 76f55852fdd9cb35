"""Alias tables (nlp/alias_table.py), the linker's use of them (nlp/linker.py) and learning them
from labelled texts (nlp/alias_learning.py), on a tiny symptom KG with a fake encoder.

The fake encoder gives each entity name its own axis (dimensions 0-7) and puts the phrases we
declare synonyms on the same axis ("worn out" and "fatigue"); every other string gets a seeded
random direction in dimensions 8 and up, so it is exactly orthogonal to every entity name. The
cosines of the alignment are therefore known in advance: 1.0 for a synonym, 0.0 for anything else.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import spacy

import kg
import nlp.linker  # noqa: F401  (registers the kg_linker factory for spacy.load)
from nlp.alias_learning import LearnSettings, learn_aliases
from nlp.alias_table import AliasTable, TableAlias
from nlp.errors import LinkingError
from nlp.linker import KGLinker, from_kg

EX = "http://example.org/symptomkb/"
TTL = f"""\
@prefix ex: <{EX}> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .

ex:flu a ex:Disease ; rdfs:label "influenza" ;
    ex:hasSymptom ex:fatigue , ex:high_fever ; ex:affects ex:lungs .
ex:anemia a ex:Disease ; rdfs:label "anemia" ; ex:hasSymptom ex:fatigue , ex:skin_rash .
ex:gastro a ex:Disease ; rdfs:label "gastroenteritis" ; ex:hasSymptom ex:vomiting , ex:high_fever .
ex:migraine a ex:Disease ; rdfs:label "migraine" ; ex:hasSymptom ex:neck_pain , ex:vomiting .
ex:eczema a ex:Disease ; rdfs:label "eczema" ; ex:hasSymptom ex:skin_rash .
ex:common_cold a ex:Disease ; rdfs:label "cold" .

ex:fatigue a ex:Symptom ; rdfs:label "fatigue" .
ex:vomiting a ex:Symptom ; rdfs:label "vomiting" .
ex:neck_pain a ex:Symptom ; rdfs:label "neck pain" .
ex:high_fever a ex:Symptom ; rdfs:label "high fever" .
ex:skin_rash a ex:Symptom ; rdfs:label "skin rash" .
ex:chills a ex:Symptom ; rdfs:label "cold" .
ex:itchy_skin a ex:Symptom ; rdfs:label "pruritus" .
ex:lungs a ex:Organ ; rdfs:label "lungs" .
"""

DIM = 64
NAMED_AXES = 8  # dimensions 0..7 are entity names and their synonyms; the rest is noise


def axis(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


SYNONYMS: dict[str, np.ndarray] = {
    "fatigue": axis(0),
    "worn out": axis(0),
    "vomiting": axis(1),
    "throwing up": axis(1),
    "neck pain": axis(2),
    "stiff neck": axis(2),
    "high fever": axis(3),
    "fever": axis(3),  # a part of the name "high fever"
    "skin rash": axis(4),
    "lungs": axis(5),
    "chest": axis(5),
    "pruritus": axis(6),
    "cold": axis(7),
}


class FakeEncoder:
    """texts -> unit float32 vectors [n, DIM]; records what it was asked to embed."""

    def __init__(self, overrides: dict[str, np.ndarray] | None = None):
        self.vectors = {**SYNONYMS, **(overrides or {})}
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> np.ndarray:
        if text in self.vectors:
            v = self.vectors[text]
        else:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
            v[:NAMED_AXES] = 0.0  # orthogonal to every entity name
        return (v / np.linalg.norm(v)).astype(np.float32)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts])


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> kg.KnowledgeGraph:
    path = tmp_path_factory.mktemp("kb") / "symptoms.ttl"
    path.write_text(TTL, encoding="utf-8")
    return kg.load(path)


@pytest.fixture(scope="module")
def plain(graph: kg.KnowledgeGraph) -> spacy.Language:
    """A linker without a table; tests must not change it."""
    return from_kg(graph)


def links(pipeline: spacy.Language, text: str) -> list[tuple[str, str]]:
    return [(e.text, e.kb_id_.removeprefix(EX)) for e in pipeline(text)._.kg_entities]


def linker_of(pipeline: spacy.Language) -> KGLinker:
    linker = pipeline.get_pipe("kg_linker")
    assert isinstance(linker, KGLinker)
    return linker


def with_table(graph: kg.KnowledgeGraph, *rows: tuple[str, str]) -> spacy.Language:
    pipeline = from_kg(graph)
    linker_of(pipeline).set_aliases(AliasTable([TableAlias(a, e) for a, e in rows]))
    return pipeline


def learned(table: AliasTable) -> dict[str, tuple[str, int | None, int | None]]:
    """alias -> (entity local name, support, occurrences)."""
    return {r.alias: (r.entity.removeprefix(EX), r.support, r.occurrences) for r in table.rows}


def learn(
    pipeline: spacy.Language,
    graph: kg.KnowledgeGraph,
    corpus: Sequence[tuple[str, str]],
    settings: LearnSettings | None = None,
    encoder: FakeEncoder | None = None,
) -> AliasTable:
    """Learn from (text, label) pairs, each label a disease label of the KG."""
    return learn_aliases(
        pipeline,
        [text for text, _ in corpus],
        [[graph.resolve(label)] for _, label in corpus],
        settings,
        encoder=encoder or FakeEncoder(),
    )


# ----- the table file -----


def test_alias_table_round_trips_plain_rows(tmp_path: Path) -> None:
    rows = [
        TableAlias("worn out", "fatigue"),
        TableAlias("throwing up", EX + "vomiting"),
        TableAlias('can\'t "sleep"', "fatigue"),  # quotes are plain characters in the TSV
    ]
    path = AliasTable(rows).save(tmp_path / "sub" / "aliases.tsv")  # makes the folder
    assert path == tmp_path / "sub" / "aliases.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "alias\tentity"  # no learned columns when no row is learned
    assert lines[1] == "worn out\tfatigue"
    again = AliasTable.load(path)
    assert again.rows == rows
    assert again.source == str(path) and len(again) == 3


def test_alias_table_round_trips_learned_columns(tmp_path: Path) -> None:
    rows = [
        TableAlias("worn out", EX + "fatigue", 12, 13, 0.613),
        TableAlias("throwing up", "vomiting"),  # a hand-written row beside learned ones
    ]
    path = AliasTable(rows).save(tmp_path / "aliases.tsv")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "alias\tentity\tsupport\toccurrences\tsimilarity"
    assert lines[1] == f"worn out\t{EX}fatigue\t12\t13\t0.613"
    assert lines[2] == "throwing up\tvomiting\t\t\t"
    assert AliasTable.load(path).rows == rows


def test_alias_table_save_flattens_tabs_and_newlines(tmp_path: Path) -> None:
    table = AliasTable([TableAlias("worn\tout", "fatigue"), TableAlias("throwing\nup", "vomiting")])
    saved = table.save(tmp_path / "aliases.tsv")
    assert [(r.alias, r.entity) for r in AliasTable.load(saved).rows] == [
        ("worn out", "fatigue"),
        ("throwing up", "vomiting"),
    ]


def test_alias_table_parse_skips_comments_and_blank_lines_and_reads_any_column_order() -> None:
    text = "# my synonyms\n\nEntity\tAlias\nfatigue\tworn out\n\n  vomiting \t throwing up \n"
    table = AliasTable.parse(text, "mine.tsv")
    assert table.rows == [TableAlias("worn out", "fatigue"), TableAlias("throwing up", "vomiting")]
    assert table.source == "mine.tsv"


def test_alias_table_rows_after_the_header_may_start_with_a_hash() -> None:
    """Comments come before the header only: "#tired" (a hashtag) is a row."""
    table = AliasTable.parse("# tags\nalias\tentity\n#tired\tfatigue\n", "tags.tsv")
    assert table.rows == [TableAlias("#tired", "fatigue")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "alias\tiri\nworn out\tfatigue\n",
            "t.tsv:1: the header must name the columns alias and entity",
        ),
        ("alias\tentity\tcolour\n", "t.tsv:1: the header must name"),  # unknown column
        (
            "# synonyms\nalias\tentity\n\nworn out\tfatigue\textra\n",
            "t.tsv:4: expected 2 tab-separated columns",
        ),
        (
            "alias\tentity\tsupport\ntired\tfatigue\t3\nworn out\tfatigue\n",
            "t.tsv:3: expected 3 tab-separated columns",
        ),
        ("alias\tentity\tsupport\nworn out\tfatigue\tmany\n", "t.tsv:2: 'many' is not a number"),
        ("alias\tentity\tsimilarity\nworn out\tfatigue\thigh\n", "t.tsv:2: 'high' is not a number"),
        ("alias\tentity\n\tfatigue\n", "t.tsv:2: empty alias or entity"),
        ("", "t.tsv: empty alias table"),
        ("# nothing but a comment\n", "t.tsv: empty alias table"),
    ],
)
def test_alias_table_parse_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(LinkingError) as info:
        AliasTable.parse(text, "t.tsv")
    assert message in str(info.value)


def test_alias_table_load_of_a_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "aliases.tsv"
    with pytest.raises(LinkingError) as info:
        AliasTable.load(missing)
    assert str(missing) in str(info.value) and "not found" in str(info.value)


def test_alias_table_load_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "aliases.tsv"
    path.write_text("alias\tentity\nworn out\n", encoding="utf-8")
    with pytest.raises(LinkingError, match=f"{path}:2: expected 2"):
        AliasTable.load(path)


def test_alias_table_resolve_accepts_iris_and_unique_labels(graph: kg.KnowledgeGraph) -> None:
    table = AliasTable(
        [
            TableAlias("worn out", EX + "fatigue"),
            TableAlias("tired", "Fatigue"),  # a label, any case
            TableAlias("worn out", "fatigue"),  # the same name twice: kept once
            TableAlias("throwing up", "vomiting"),
        ]
    )
    assert table.resolve(graph) == {
        graph.entity_id(EX + "fatigue"): ["worn out", "tired"],
        graph.entity_id(EX + "vomiting"): ["throwing up"],
    }


def test_alias_table_resolve_names_unknown_and_ambiguous_rows(graph: kg.KnowledgeGraph) -> None:
    table = AliasTable(
        [
            TableAlias("worn out", "fatigue"),
            TableAlias("sore throat", "pharyngitis"),
            TableAlias("shivers", "cold"),  # a disease and a symptom are both labelled "cold"
        ],
        "mine.tsv",
    )
    with pytest.raises(LinkingError) as info:
        table.resolve(graph)
    message = str(info.value)
    assert "mine.tsv" in message and "2 row(s)" in message
    assert "'sore throat'" in message and "pharyngitis" in message
    assert "'shivers'" in message and EX + "chills" in message and EX + "common_cold" in message
    assert "'worn out'" not in message


def test_alias_table_resolve_lists_five_problems_and_counts_the_rest(
    graph: kg.KnowledgeGraph,
) -> None:
    table = AliasTable([TableAlias(f"name{i}", f"{EX}missing{i}") for i in range(7)])
    with pytest.raises(LinkingError) as info:
        table.resolve(graph)
    message = str(info.value)
    assert "7 row(s)" in message and "and 2 more" in message
    assert "'name4'" in message and "'name5'" not in message


def test_alias_table_failed_save_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = AliasTable([TableAlias("worn out", "fatigue")]).save(tmp_path / "aliases.tsv")
    before = path.read_text(encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        AliasTable([TableAlias("tired", "fatigue")]).save(path)
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aliases.tsv"]


def test_alias_table_save_onto_a_folder_fails_and_leaves_no_temporary(tmp_path: Path) -> None:
    folder = tmp_path / "aliases.tsv"
    folder.mkdir()
    with pytest.raises(OSError):
        AliasTable([TableAlias("worn out", "fatigue")]).save(folder)
    assert folder.is_dir() and not any(folder.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aliases.tsv"]


def test_alias_table_round_trips_an_alias_starting_with_a_hash(tmp_path: Path) -> None:
    rows = [TableAlias("#tired", "fatigue"), TableAlias("worn out", "fatigue")]
    assert AliasTable.load(AliasTable(rows).save(tmp_path / "aliases.tsv")).rows == rows


# ----- the linker with a table -----


def test_linker_links_a_table_alias_only_with_the_table(
    graph: kg.KnowledgeGraph, plain: spacy.Language
) -> None:
    assert links(plain, "I am worn out") == []
    pipeline = with_table(graph, ("worn out", "fatigue"))
    assert links(pipeline, "I am worn out") == [("worn out", "fatigue")]
    assert links(pipeline, "She is Worn Out today") == [("Worn Out", "fatigue")]  # case
    span = pipeline("I am worn out")._.kg_entities[0]
    assert span._.kg_candidates[0][0] == EX + "fatigue"
    assert span.label_ == "Symptom"
    _, generator, _ = linker_of(pipeline)._ready()
    mentions = generator.generate(pipeline.make_doc("I am worn out"))
    assert [(m.start, m.end, [c.kind for c in m.candidates]) for m in mentions] == [
        (2, 4, ["table"])
    ]


def test_linker_table_alias_matches_case_and_inflection_in_its_word_order(
    graph: kg.KnowledgeGraph,
) -> None:
    pipeline = with_table(graph, ("neck hurts", EX + "neck_pain"), ("Throwing Up", "vomiting"))
    assert links(pipeline, "my neck hurt all day") == [("neck hurt", "neck_pain")]  # lemma
    assert links(pipeline, "NECK HURTING") == [("NECK HURTING", "neck_pain")]
    assert links(pipeline, "I threw up twice") == [("threw up", "vomiting")]  # any case
    # a table name is matched in its own word order (KG labels are not): see nlp/candidates.py
    assert links(pipeline, "my neck is hurting") == []
    assert links(pipeline, "it is hurting my neck") == []
    assert links(pipeline, "a pain in my neck") == [("pain in my neck", "neck_pain")]
    # nor by derivational roots, which reach lower-case KG labels ("itchy" ~ "itching")
    itchy = with_table(graph, ("itchy skin", "pruritus"))
    assert links(itchy, "very itchy skin") == [("itchy skin", "itchy_skin")]
    assert links(itchy, "itching skin") == []


def test_linker_kg_label_beats_a_table_alias_of_another_entity(graph: kg.KnowledgeGraph) -> None:
    pipeline = with_table(graph, ("high fever", "skin rash"))
    doc = pipeline("a high fever today")
    assert [(e.text, e.kb_id_) for e in doc._.kg_entities] == [("high fever", EX + "high_fever")]
    ranked = [iri for iri, _ in doc._.kg_entities[0]._.kg_candidates]
    assert ranked == [EX + "high_fever", EX + "skin_rash"]  # the table's entity: runner-up
    string_only = from_kg(
        graph, weights={"string": 1.0, "prior": 0.0, "context": 0.0, "coherence": 0.0}
    )
    linker_of(string_only).set_aliases(AliasTable([TableAlias("high fever", "skin rash")]))
    scores = string_only("a high fever today")._.kg_entities[0]._.kg_candidates
    assert [iri for iri, _ in scores] == [EX + "high_fever", EX + "skin_rash"]
    assert scores[0][1] > scores[1][1]  # a table name matches less surely than a KG label


def test_linker_set_aliases_takes_a_path_and_none(graph: kg.KnowledgeGraph, tmp_path: Path) -> None:
    path = AliasTable([TableAlias("worn out", "fatigue")]).save(tmp_path / "aliases.tsv")
    pipeline = from_kg(graph)
    linker = linker_of(pipeline)
    assert linker.set_aliases(path) is linker
    assert links(pipeline, "I am worn out") == [("worn out", "fatigue")]
    linker.set_aliases(str(path))
    assert links(pipeline, "I am worn out") == [("worn out", "fatigue")]
    linker.set_aliases(None)
    assert links(pipeline, "I am worn out") == []
    with pytest.raises(LinkingError, match=str(tmp_path / "missing.tsv")):
        linker.set_aliases(tmp_path / "missing.tsv")


def test_linker_table_survives_to_disk_and_spacy_load(
    graph: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    pipeline = with_table(graph, ("worn out", "fatigue"), ("throwing up", "vomiting"))
    pipeline.to_disk(tmp_path / "pipeline")
    saved = tmp_path / "pipeline" / "kg_linker" / "aliases.tsv"
    assert AliasTable.load(saved).rows == [
        TableAlias("worn out", "fatigue"),
        TableAlias("throwing up", "vomiting"),
    ]
    again = spacy.load(tmp_path / "pipeline")
    text = "I am worn out and keep throwing up"
    assert links(again, text) == [("worn out", "fatigue"), ("throwing up", "vomiting")]
    assert links(again, text) == links(pipeline, text)


def test_linker_without_a_table_saves_no_table(graph: kg.KnowledgeGraph, tmp_path: Path) -> None:
    from_kg(graph).to_disk(tmp_path / "pipeline")
    assert not (tmp_path / "pipeline" / "kg_linker" / "aliases.tsv").exists()
    assert links(spacy.load(tmp_path / "pipeline"), "I am worn out") == []


def test_linker_config_aliases_path(graph: kg.KnowledgeGraph, tmp_path: Path) -> None:
    path = AliasTable([TableAlias("worn out", "fatigue")]).save(tmp_path / "aliases.tsv")
    pipeline = from_kg(graph, aliases=str(path))
    assert pipeline.config["components"]["kg_linker"]["aliases"] == str(path)
    assert links(pipeline, "I am worn out") == [("worn out", "fatigue")]
    pipeline.to_disk(tmp_path / "pipeline")
    path.unlink()  # the saved pipeline carries its own copy
    assert links(spacy.load(tmp_path / "pipeline"), "I am worn out") == [("worn out", "fatigue")]


def test_linker_config_aliases_path_is_read_when_the_kg_loads(
    graph: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    table = AliasTable([TableAlias("worn out", EX + "fatigue")]).save(tmp_path / "aliases.tsv")
    folder = graph.save(tmp_path / "kg")
    pipeline = spacy.blank("en")
    pipeline.add_pipe("kg_linker", config={"kg": str(folder), "aliases": str(table)})
    assert links(pipeline, "so worn out") == [("worn out", "fatigue")]


def test_linker_fails_when_the_table_names_an_entity_the_kg_lacks(
    graph: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    path = tmp_path / "other_kg.tsv"
    path.write_text("alias\tentity\nworn out\tfatigue\nsore throat\tpharyngitis\n", "utf-8")
    with pytest.raises(LinkingError) as info:
        from_kg(graph, aliases=str(path))
    assert str(path) in str(info.value) and "'sore throat'" in str(info.value)
    with pytest.raises(LinkingError, match="'sore throat'"):
        linker_of(from_kg(graph)).set_aliases(path)
    with pytest.raises(LinkingError, match=str(tmp_path / "missing.tsv")):
        from_kg(graph, aliases=str(tmp_path / "missing.tsv"))


def test_linker_rejected_table_is_not_kept(graph: kg.KnowledgeGraph, tmp_path: Path) -> None:
    pipeline = with_table(graph, ("worn out", "fatigue"))
    with pytest.raises(LinkingError):
        linker_of(pipeline).set_aliases(AliasTable([TableAlias("sore throat", "pharyngitis")]))
    pipeline.to_disk(tmp_path / "pipeline")
    assert links(spacy.load(tmp_path / "pipeline"), "I am worn out") == links(
        pipeline, "I am worn out"
    )


def test_linker_cleared_table_stays_cleared_after_save(
    graph: kg.KnowledgeGraph, tmp_path: Path
) -> None:
    path = AliasTable([TableAlias("worn out", "fatigue")]).save(tmp_path / "aliases.tsv")
    pipeline = from_kg(graph, aliases=str(path))
    linker_of(pipeline).set_aliases(None)
    assert links(pipeline, "I am worn out") == []
    pipeline.to_disk(tmp_path / "pipeline")
    assert links(spacy.load(tmp_path / "pipeline"), "I am worn out") == []


def test_linker_all_capital_table_alias_matches_only_as_written(graph: kg.KnowledgeGraph) -> None:
    """Short all-capital names are short forms ("SOB"): as for KG labels, only as written."""
    pipeline = with_table(graph, ("TIRED", "fatigue"))
    assert links(pipeline, "I am tired") == []
    assert links(pipeline, "I am TIRED") == [("TIRED", "fatigue")]


# ----- learning -----

CORPUS = [
    ("worn out, just worn out", "influenza"),  # twice in one text: one occurrence, one link
    ("worn out and a high fever", "influenza"),  # high fever is linked; fatigue is expected
    ("so worn out lately", "anemia"),
    ("so worn out lately", "anemia"),  # a duplicate counts once
    ("I keep throwing up", "gastroenteritis"),
    ("throwing up since monday", "migraine"),
    ("a skin rash on my arm", "eczema"),
]


def test_learn_aliases_learns_phrases_of_expected_neighbours(
    graph: kg.KnowledgeGraph, plain: spacy.Language
) -> None:
    encoder = FakeEncoder()
    done: list[tuple[int, int]] = []
    table = learn_aliases(
        plain,
        [t for t, _ in CORPUS],
        [[graph.resolve(label)] for _, label in CORPUS],
        encoder=encoder,
        progress=lambda i, n: done.append((i, n)),
    )
    assert learned(table) == {
        "worn out": ("fatigue", 3, 3),  # three distinct texts, not four
        "throwing up": ("vomiting", 2, 2),
    }
    assert all(r.similarity == pytest.approx(1.0) for r in table.rows)
    assert table.source == "<learned>"
    assert done == [(i, 6) for i in range(1, 7)]  # the six distinct texts
    phrases = encoder.calls[0]
    assert "worn" not in phrases and "throwing" not in phrases  # the particle stays
    assert "high fever" not in phrases and "skin rash" not in phrases  # linked: no candidates
    # the names of every entity some text expects: KG neighbours of its label, not linked there
    assert encoder.calls[1] == [
        "fatigue",
        "high fever",
        "lungs",
        "neck pain",
        "skin rash",
        "vomiting",
    ]


def test_learn_aliases_rows_name_entities_by_iri(
    graph: kg.KnowledgeGraph, plain: spacy.Language
) -> None:
    table = learn(plain, graph, CORPUS)
    assert [r.entity for r in table.rows] == [EX + "fatigue", EX + "vomiting"]  # sorted by IRI
    assert table.resolve(graph) == {
        graph.entity_id(EX + "fatigue"): ["worn out"],
        graph.entity_id(EX + "vomiting"): ["throwing up"],
    }


def test_learn_aliases_needs_min_support(graph: kg.KnowledgeGraph, plain: spacy.Language) -> None:
    corpus = [*CORPUS, ("stiff neck today", "migraine")]
    assert "stiff neck" not in learned(learn(plain, graph, corpus))
    once = learned(learn(plain, graph, corpus, LearnSettings(min_support=1)))
    assert once["stiff neck"] == ("neck_pain", 1, 1)
    assert once["worn out"] == ("fatigue", 3, 3)
    strict = learned(learn(plain, graph, corpus, LearnSettings(min_support=3)))
    assert strict == {"worn out": ("fatigue", 3, 3)}


def test_learn_aliases_needs_min_precision(graph: kg.KnowledgeGraph, plain: spacy.Language) -> None:
    # "throwing up" is aligned in the two texts whose disease has vomiting as a symptom, and
    # also said in three eczema texts, whose disease does not: precision 2 / 5
    corpus = [
        *CORPUS,
        ("throwing up after the cream", "eczema"),
        ("throwing up at night", "eczema"),
        ("kept throwing up twice", "eczema"),
    ]
    assert "throwing up" not in learned(learn(plain, graph, corpus))
    assert learned(learn(plain, graph, corpus))["worn out"] == ("fatigue", 3, 3)
    loose = learned(learn(plain, graph, corpus, LearnSettings(min_precision=0.4)))
    assert loose["throwing up"] == ("vomiting", 2, 5)


def test_learn_aliases_partial_names_need_partial_precision(
    graph: kg.KnowledgeGraph, plain: spacy.Language
) -> None:
    # "fever" is only part of "high fever": precision 3 / 5 passes min_precision (0.5) but not
    # partial_precision (0.7)
    corpus = [
        ("a fever since monday", "influenza"),
        ("fever all night", "influenza"),
        ("fever with chills", "gastroenteritis"),
        ("a fever from the cream", "eczema"),
        ("fever again", "eczema"),
    ]
    assert "fever" not in learned(learn(plain, graph, corpus))
    settings = LearnSettings(partial_precision=0.6)
    assert learned(learn(plain, graph, corpus, settings))["fever"] == ("high_fever", 3, 5)


def test_learn_aliases_does_not_expect_entities_the_text_already_links(
    graph: kg.KnowledgeGraph, plain: spacy.Language
) -> None:
    says_fatigue = [
        ("fatigue, I am worn out", "influenza"),
        ("worn out from the fatigue", "anemia"),
        ("fatigue: worn out all week", "influenza"),
    ]
    assert links(plain, says_fatigue[0][0]) == [("fatigue", "fatigue")]
    settings = LearnSettings(min_support=1)
    assert "worn out" not in learned(learn(plain, graph, says_fatigue, settings))
    without = [(text.replace("fatigue", "flu shot"), label) for text, label in says_fatigue]
    assert learned(learn(plain, graph, without, settings))["worn out"] == ("fatigue", 3, 3)


def test_learn_aliases_never_learns_a_name_the_kg_already_has(graph: kg.KnowledgeGraph) -> None:
    # a linker so strict that it links nothing: "fatigue" stays unlinked and fatigue expected,
    # yet the KG's own name is no candidate alias; the phrase beside it is learned instead
    strict = from_kg(graph, threshold=1.0)
    corpus = [("fatigue, worn out", "influenza"), ("worn out: fatigue", "anemia")]
    assert links(strict, corpus[0][0]) == []
    table = learn(strict, graph, corpus, LearnSettings(min_support=1))
    assert learned(table) == {"worn out": ("fatigue", 2, 2)}


def test_learn_aliases_follows_the_linker_type_filter(graph: kg.KnowledgeGraph) -> None:
    corpus = [
        *CORPUS,
        ("my chest hurts", "influenza"),
        ("a heavy chest", "influenza"),
    ]
    anything = learned(learn(from_kg(graph), graph, corpus))
    assert anything["chest"] == ("lungs", 2, 2)  # lungs: an organ next to influenza
    symptoms_only = from_kg(graph, types=[EX + "Symptom"])
    assert learned(learn(symptoms_only, graph, corpus)) == {
        "worn out": ("fatigue", 3, 3),
        "throwing up": ("vomiting", 2, 2),
    }


def test_learn_aliases_drops_an_alias_holding_a_shorter_one(
    graph: kg.KnowledgeGraph, plain: spacy.Language
) -> None:
    # "totally worn out" is the best match of fatigue (cosine 1.0 less 0.06 for two extra words,
    # against 0.9 for "worn out") where it occurs; "worn out" is aligned where it stands alone
    worn_out = 0.9 * axis(0) + np.sqrt(1 - 0.9**2) * axis(7)
    encoder = FakeEncoder({"worn out": worn_out, "totally worn out": axis(0)})
    totally = [
        ("totally worn out by noon", "influenza"),
        ("I am totally worn out", "anemia"),
    ]
    alone = [
        ("I am worn out", "influenza"),
        ("worn out again", "anemia"),
        ("worn out every evening", "influenza"),
    ]
    just_totally = learned(learn(plain, graph, totally, encoder=encoder))
    assert just_totally == {"totally worn out": ("fatigue", 2, 2)}
    table = learn(plain, graph, totally + alone, encoder=encoder)
    assert learned(table) == {"worn out": ("fatigue", 3, 5)}
    assert table.rows[0].similarity == pytest.approx(0.9, abs=1e-3)


def test_learn_aliases_counts_inflected_phrases_together(
    graph: kg.KnowledgeGraph, plain: spacy.Language
) -> None:
    corpus = [
        ("I keep throwing up", "gastroenteritis"),
        ("I threw up twice", "migraine"),
        ("threw up at dawn", "gastroenteritis"),
    ]
    encoder = FakeEncoder({"threw up": axis(1)})
    table = learn(plain, graph, corpus, encoder=encoder)
    assert learned(table) == {"threw up": ("vomiting", 3, 3)}  # the most common wording


def test_learn_aliases_rejects_bad_settings_and_input(
    graph: kg.KnowledgeGraph, plain: spacy.Language
) -> None:
    fatigue_text = (["I am worn out"], [[graph.resolve("influenza")]])
    with pytest.raises(LinkingError) as info:
        learn_aliases(plain, *fatigue_text, LearnSettings(min_similarity=2), encoder=FakeEncoder())
    assert "min_similarity must be in [0, 1] (got 2)" in str(info.value)
    with pytest.raises(LinkingError) as info:
        learn_aliases(
            plain,
            *fatigue_text,
            LearnSettings(min_support=0, max_words=9, length_penalty=-1, min_precision=-0.1),
            encoder=FakeEncoder(),
        )
    for name in ("min_support", "max_words", "length_penalty", "min_precision"):
        assert name in str(info.value)  # every problem at once
    with pytest.raises(LinkingError, match="2 texts but 1 label entity lists"):
        learn_aliases(plain, ["a", "b"], [[0]], encoder=FakeEncoder())
    with pytest.raises(LinkingError, match="no kg_linker"):
        learn_aliases(spacy.blank("en"), *fatigue_text, encoder=FakeEncoder())

    def short(texts: Sequence[str]) -> np.ndarray:
        return FakeEncoder()(texts)[:-1]

    with pytest.raises(LinkingError, match="the encoder returned"):
        learn_aliases(plain, *fatigue_text, encoder=short)


def test_learn_aliases_of_nothing_is_an_empty_table(plain: spacy.Language) -> None:
    encoder = FakeEncoder()
    assert len(learn_aliases(plain, [], [], encoder=encoder)) == 0
    assert len(learn_aliases(plain, ["nothing to see"], [[]], encoder=encoder)) == 0


def test_learned_table_saved_and_loaded_links_held_out_texts(
    graph: kg.KnowledgeGraph, plain: spacy.Language, tmp_path: Path
) -> None:
    path = learn(plain, graph, CORPUS).save(tmp_path / "aliases.tsv")
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header == "alias\tentity\tsupport\toccurrences\tsimilarity"
    assert links(plain, "she is worn out") == []
    pipeline = from_kg(graph, aliases=str(path))
    assert links(pipeline, "she is worn out") == [("worn out", "fatigue")]
    assert links(pipeline, "he was throwing up") == [("throwing up", "vomiting")]
    doc = pipeline("she is worn out")
    assert doc._.kg_entities[0]._.kg_candidates[0][0] == EX + "fatigue"


def test_learn_aliases_refuses_a_triple_store_linker(tiny_ttl: Path, tmp_path: Path) -> None:
    """Over a store the linker holds names only; learning needs every label's neighbours."""
    from typer.testing import CliRunner

    from kg.cli import app as kg_app
    from kg.store_graph import StoreGraph

    store = tmp_path / "store"
    args = ["load", str(tiny_ttl), "--backend", "oxigraph", "--store", str(store)]
    assert CliRunner().invoke(kg_app, args).exit_code == 0
    pipeline = from_kg(StoreGraph.connect(store))
    with pytest.raises(LinkingError, match="compiled KG"):
        learn_aliases(pipeline, ["a fever"], [[0]], encoder=FakeEncoder())
