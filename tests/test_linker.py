"""The kg_linker spaCy component: each candidate path, disambiguation, filters, serialization."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import spacy

import kg
from nlp.errors import LinkingError
from nlp.linker import from_kg

MED = "http://example.org/med/"
FIXTURE = Path(__file__).parent / "fixtures" / "linker.ttl"


@pytest.fixture(scope="module")
def graph() -> kg.KnowledgeGraph:
    return kg.load(FIXTURE)


@pytest.fixture(scope="module")
def nlp(graph: kg.KnowledgeGraph) -> spacy.Language:
    return from_kg(graph)


def links(pipeline: spacy.Language, text: str) -> list[tuple[str, str]]:
    return [(e.text, e.kb_id_.removeprefix(MED)) for e in pipeline(text)._.kg_entities]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I have a cough and a runny nose.", [("cough", "cough"), ("runny nose", "runny_nose")]),
        ("COUGH, Runny Nose", [("COUGH", "cough"), ("Runny Nose", "runny_nose")]),  # case
        ("Coughs and runny noses", [("Coughs", "cough"), ("runny noses", "runny_nose")]),  # plural
        ("I think it is influensa", [("influensa", "flu")]),  # fuzzy typo
        ("my joints have pain", [("joints have pain", "joint_pain")]),  # window, any order
        ("a pain in my back", [("pain in my back", "back_pain")]),  # "back" is a spaCy stop word
        ("my joints are painful", [("joints are painful", "joint_pain")]),  # window of roots
        ("my skin is so itchy", [("itchy", "itching")]),  # root: another part of speech
        ("I feel congested", [("congested", "congestion")]),  # root
        ("I have had diarrhea", [("diarrhea", "diarrhoea")]),  # respelled: a spelling variant
        ("I have a rash. My skin is dry", []),  # windows stay inside a sentence
        ("my joints, joints pain", [("joints pain", "joint_pain")]),  # the tightest window
        # proper names are not reached by roots or spelling variants of common words
        ("they dance in the darkness", []),
        ("Dancer and Dark", [("Dancer", "dancer"), ("Dark", "dark")]),
    ],
)
def test_linker_candidate_paths(
    nlp: spacy.Language, text: str, expected: list[tuple[str, str]]
) -> None:
    assert links(nlp, text) == expected


def test_linker_abbreviation_in_text_links_to_the_long_alias(nlp: spacy.Language) -> None:
    assert links(nlp, "My GERD is acting up again") == [("GERD", "gerd")]


def test_linker_long_form_in_text_links_to_the_short_alias(nlp: spacy.Language) -> None:
    assert links(nlp, "He has chronic obstructive pulmonary disease") == [
        ("chronic obstructive pulmonary disease", "copd")
    ]


def test_linker_abbreviation_defined_by_the_text(nlp: spacy.Language) -> None:
    found = links(nlp, "I get joint pain (JP) at night. The JP is worse when it rains.")
    assert found == [("joint pain", "joint_pain"), ("JP", "joint_pain"), ("JP", "joint_pain")]


def test_linker_overlaps_resolve_to_the_longest_match(nlp: spacy.Language) -> None:
    assert links(nlp, "Every spring my hay fever returns") == [("hay fever", "hay_fever")]


def test_linker_ambiguity_resolved_by_context(graph: kg.KnowledgeGraph) -> None:
    context_only = from_kg(
        graph, weights={"string": 0.5, "prior": 0.0, "context": 0.5, "coherence": 0.0}
    )
    assert links(context_only, "I caught a cold, my nose and throat are sore")[0] == (
        "cold",
        "common_cold",
    )
    assert links(context_only, "I feel cold and keep shivering")[0] == ("cold", "chills")
    doc = context_only("I feel cold and keep shivering")
    ranked = [iri.removeprefix(MED) for iri, _ in doc._.kg_entities[0]._.kg_candidates]
    assert ranked == ["chills", "common_cold"]  # the runner-up is kept, ranked


def test_linker_ambiguity_resolved_by_coherence(graph: kg.KnowledgeGraph) -> None:
    coherence_only = from_kg(
        graph, weights={"string": 0.5, "prior": 0.0, "context": 0.0, "coherence": 0.5}
    )
    assert links(coherence_only, "A jaguar crossed the rainforest")[0] == ("jaguar", "jaguar_cat")
    assert links(coherence_only, "A Jaguar built in Coventry")[0] == ("Jaguar", "jaguar_car")


def test_linker_threshold_drops_weak_links(graph: kg.KnowledgeGraph) -> None:
    text = "I think it is influensa, with a cough"
    assert [iri for _, iri in links(from_kg(graph, threshold=0.5), text)] == ["flu", "cough"]
    assert [iri for _, iri in links(from_kg(graph, threshold=0.8), text)] == [
        "cough"
    ]  # fuzzy dropped


def test_linker_type_filter(graph: kg.KnowledgeGraph) -> None:
    only_symptoms = from_kg(graph, types=[MED + "Symptom"])
    assert links(only_symptoms, "Influenza with a cough") == [("cough", "cough")]
    with pytest.raises(LinkingError, match="none of the types"):
        from_kg(graph, types=[MED + "Planet"])


def test_linker_min_alias_length_and_stop_aliases(
    graph: kg.KnowledgeGraph, nlp: spacy.Language
) -> None:
    assert links(nlp, "The flu is back") == [("flu", "flu")]  # "The" names a band: a stop alias
    assert links(from_kg(graph, min_alias_length=4), "The flu is back") == []
    assert links(from_kg(graph, stop_aliases=["flu"]), "The flu is back") == [("The", "the_band")]


def test_linker_does_not_link_classes_by_default(
    graph: kg.KnowledgeGraph, nlp: spacy.Language
) -> None:
    assert links(nlp, "a symptom") == []
    assert links(from_kg(graph, link_classes=True), "a symptom") == [("symptom", "Symptom")]


def test_linker_span_attributes(nlp: spacy.Language) -> None:
    doc = nlp("Influenza and a cough")
    flu = doc._.kg_entities[0]
    assert flu.kb_id_ == MED + "flu" and flu.label_ == "Disease"
    assert flu._.kg_candidates[0][0] == MED + "flu" and 0 < flu._.kg_candidates[0][1] <= 1
    assert [e.text for e in doc.ents] == ["Influenza", "cough"]


def test_linker_keeps_existing_entities_unless_told(graph: kg.KnowledgeGraph) -> None:
    for overwrite, expected in [(False, "PERSON"), (True, "Disease")]:
        pipe = spacy.blank("en")
        ruler = pipe.add_pipe("entity_ruler")
        ruler.add_patterns([{"label": "PERSON", "pattern": "Influenza"}])
        from_kg(graph, nlp=pipe, overwrite_ents=overwrite)
        doc = pipe("Influenza again")
        assert [e.label_ for e in doc.ents] == [expected]
        assert [e.kb_id_ for e in doc._.kg_entities] == [MED + "flu"]  # always in doc.spans


def test_linker_empty_text_and_too_long_text(graph: kg.KnowledgeGraph, nlp: spacy.Language) -> None:
    assert links(nlp, "") == []
    short = from_kg(graph, max_length=10)
    with pytest.raises(LinkingError, match="over the linker's max_length"):
        short("a text of more than ten characters")


def test_linker_missing_kg_folder_and_no_kg(tmp_path: Path) -> None:
    pipe = spacy.blank("en")
    pipe.add_pipe("kg_linker", config={"kg": str(tmp_path / "missing")})
    with pytest.raises(LinkingError, match=str(tmp_path / "missing")):
        pipe("text")
    bare = spacy.blank("en")
    bare.add_pipe("kg_linker")
    with pytest.raises(LinkingError, match="no knowledge graph"):
        bare("text")


def test_linker_kg_without_labels_falls_back_to_local_names(tmp_path: Path) -> None:
    nt = tmp_path / "nolabels.nt"
    nt.write_text("<http://e.org/joint_pain> <http://e.org/of> <http://e.org/Influenza> .\n")
    with pytest.warns(UserWarning, match="no labels"):
        pipe = from_kg(kg.load(nt))
    assert [e.kb_id_ for e in pipe("bad joint pain")._.kg_entities] == ["http://e.org/joint_pain"]


def test_linker_config_errors_are_reported_together(graph: kg.KnowledgeGraph) -> None:
    with pytest.raises(LinkingError) as info:
        from_kg(graph, threshold=2.0, max_candidates=0)
    assert "threshold" in str(info.value) and "max_candidates" in str(info.value)


def test_linker_round_trips_through_to_disk_and_spacy_load(
    nlp: spacy.Language, tmp_path: Path
) -> None:
    text = "My GERD and a cold with sneezing; influensa?"
    nlp.to_disk(tmp_path / "pipeline")
    again = spacy.load(tmp_path / "pipeline")
    assert links(again, text) == links(nlp, text)
    assert [e._.kg_candidates for e in again(text)._.kg_entities] == [
        e._.kg_candidates for e in nlp(text)._.kg_entities
    ]


def test_linker_factory_is_found_through_the_entry_point(
    tmp_path: Path, graph: kg.KnowledgeGraph
) -> None:
    folder = graph.save(tmp_path / "kg")
    code = (
        "import spacy, sys\n"
        "assert 'nlp.linker' not in sys.modules\n"
        f"p = spacy.blank('en'); p.add_pipe('kg_linker', config={{'kg': {str(folder)!r}}})\n"
        "print([e.kb_id_ for e in p('a cough').ents])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"['{MED}cough']"


def test_linker_index_misspelled_alias_is_found_through_the_ngram_index() -> None:
    from nlp.ngram_index import NgramIndex

    index = NgramIndex(["diarrhoea", "headache", "psoriasis", "joint pain"])
    best = index.search("psoriasys", limit=1)[0]
    assert index.texts[best.id] == "psoriasis" and best.ratio > 0.85
    assert index.search("qqqq") == []  # no shared 3-gram: no candidate


def test_linker_index_is_saved_once_and_loaded_for_the_same_kg(
    graph: kg.KnowledgeGraph, nlp: spacy.Language, tmp_path: Path
) -> None:
    from nlp.linker_index import load_index, save_index

    text = "My GERD and a cold with sneezing; influensa? I have had diarrhea"
    folder = save_index(nlp, tmp_path / "kg.linker")
    assert (folder / "meta.json").is_file()
    loaded = from_kg(graph, index=str(folder))
    assert loaded.get_pipe("kg_linker").index_loaded  # read, not built
    assert [e._.kg_candidates for e in loaded(text)._.kg_entities] == [
        e._.kg_candidates for e in nlp(text)._.kg_entities
    ]
    # a pipeline whose index folder is missing builds it and writes it there
    fresh = from_kg(graph, index=str(tmp_path / "new.linker"))
    assert not fresh.get_pipe("kg_linker").index_loaded
    assert load_index(from_kg(graph), tmp_path / "new.linker")


def test_linker_index_for_another_kg_or_settings_is_rebuilt(
    graph: kg.KnowledgeGraph, nlp: spacy.Language, tmp_path: Path
) -> None:
    from nlp.linker_index import save_index

    folder = save_index(nlp, tmp_path / "kg.linker")
    with pytest.warns(UserWarning, match="other linker settings"):
        other = from_kg(graph, index=str(folder), min_alias_length=4)
    assert not other.get_pipe("kg_linker").index_loaded
    tsv = tmp_path / "other.tsv"
    tsv.write_text("joint pain\tof\tInfluenza\n")
    with pytest.warns(UserWarning, match="another KG"):
        small = from_kg(kg.load(tsv), index=str(folder))
    assert [e.text for e in small("bad joint pain")._.kg_entities] == ["joint pain"]
    (folder / "fuzzy.grams.npy").write_bytes(b"damaged")  # rewritten for the small KG above
    save_index(nlp, folder)
    (folder / "fuzzy.grams.npy").write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="unreadable"):
        again = from_kg(graph, index=str(folder))
    assert links(again, "influensa") == [("influensa", "flu")]


def test_linker_index_loaded_links_every_path_as_the_built_one(
    graph: kg.KnowledgeGraph, nlp: spacy.Language, tmp_path: Path
) -> None:
    """The alias tables are saved with the index and read back as arrays: every candidate
    path (exact, lemma, root, respelled, window, abbreviation, fuzzy) gives the same links."""
    from nlp.linker_index import save_index

    texts = [
        "I have a cough and a runny nose. COUGH, Runny Nose; coughs and runny noses",
        "I think it is influensa, my joints have pain and a pain in my back",
        "my joints are painful, my skin is so itchy, I feel congested, I have had diarrhea",
        "Dancer and Dark; they dance in the darkness. My GERD, gastroesophageal reflux disease",
    ]
    folder = save_index(nlp, tmp_path / "kg.linker")
    loaded = from_kg(graph, index=str(folder))
    assert loaded.get_pipe("kg_linker").index_loaded
    for text in texts:
        built = [(e.start, e.end, e._.kg_candidates) for e in nlp(text)._.kg_entities]
        assert (
            built
            and [(e.start, e.end, e._.kg_candidates) for e in loaded(text)._.kg_entities] == built
        )
    (folder / "alias.by_keys.hashes.npy").write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="unreadable"):
        again = from_kg(graph, index=str(folder))
    assert links(again, "a runny nose") == [("runny nose", "runny_nose")]


def test_linker_index_refuses_what_is_not_a_pipeline(tmp_path: Path) -> None:
    from nlp.linker_index import save_index

    with pytest.raises(LinkingError, match="expected a spaCy pipeline or a KGLinker"):
        save_index("out/kg", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(LinkingError, match="no kg_linker component"):
        save_index(spacy.blank("en"), tmp_path)


def test_linker_partial_mention_links_by_its_rare_words(tmp_path: Path) -> None:
    tsv = tmp_path / "skin.tsv"
    tsv.write_text(
        "skin rash\tseen_with\tskin peeling\n"
        "yellowish skin\tseen_with\tbrittle nails\n"
        "small dents in nails\tseen_with\tjoint pain\n"
        "back pain\tseen_with\tchest pain\n"
    )
    graph = kg.load(tsv)
    doc = from_kg(graph)("I have a rash and my nails have little dents")
    found = [(e.text, graph.label(graph.entity_id(e.kb_id_))) for e in doc._.kg_entities]
    assert found == [("rash", "skin rash"), ("nails have little dents", "small dents in nails")]
    # "skin" modifies other names ("skin rash"): alone it names none of them
    assert [e.text for e in from_kg(graph)("my skin is dry")._.kg_entities] == []
    assert [e.text for e in from_kg(graph, partial_coverage=1.0)("a rash")._.kg_entities] == []
    with pytest.raises(LinkingError, match="partial_coverage"):
        from_kg(graph, partial_coverage=0.0)


def test_plain_names_split_as_the_spacy_tokenizer_splits_them() -> None:
    """The fast path for names of plain words (letters, or digits) gives the tokenizer's words."""
    import spacy

    from nlp.alias_lookup import alias_splitter
    from nlp.keys import JOINERS

    nlp = spacy.blank("en")
    split = alias_splitter(nlp.make_doc)
    names = [
        "abdominal pain",
        "Pixel 8",
        "Raxxon Portable 2",
        "Viobupou Vunaero 66",
        "cannot sleep",
        "gonna 2",
        "L2 pro",
        "10km run",
        "covid 19",
        "Übelkeit 3",
        "Let's go",
        "a  b",
        "x 1st",
    ]
    for name in names:
        expected = [t.text for t in nlp.make_doc(name) if not t.is_space and t.text not in JOINERS]
        assert list(split(name)) == expected, name


def test_linker_fuzzy_match_of_a_shared_name_offers_every_entity(tmp_path: Path) -> None:
    """A misspelt name that two entities share (and a third spells apart) offers both."""
    ex, label = "http://example.org/x/", "http://www.w3.org/2000/01/rdf-schema#label"
    rows = [("a", "Zephyrion Blender"), ("b", "Zephyrion Blender"), ("c", "Quartzel Toaster")]
    path = tmp_path / "shared.nt"
    path.write_text("".join(f'<{ex}{e}> <{label}> "{name}" .\n' for e, name in rows))
    pipeline = from_kg(kg.load(path), threshold=0.0)
    spans = pipeline("It broke, my zephyrionn blender.")._.kg_entities
    assert [s.text for s in spans] == ["zephyrionn blender"]
    offered = {iri.removeprefix(ex) for iri, _ in spans[0]._.kg_candidates}
    assert offered == {"a", "b"}
