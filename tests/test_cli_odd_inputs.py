"""Odd inputs a careless user gives the `kgfuse` command line: a text too long to link, a header
that names a column twice, a field over the CSV reader's limit, a folder of another kind, a
config that is not YAML. Each gets a clear error, a non-zero exit and no traceback; in a file
of texts, only the bad text fails."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import FIXTURES, run_cli_in_process

LINKER_KG = FIXTURES / "linker.ttl"
LONG = "flu cough " * 12_000  # 120,000 characters: over the linker's 100,000

_capture: list[tuple[pytest.MonkeyPatch, pytest.CaptureFixture[str]]] = []


@pytest.fixture(autouse=True)
def _in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`run_cli` runs `kgfuse` in this process: the same `main`, exit code and output as the
    real entry point, without a fresh interpreter importing torch for each of 50 calls."""
    _capture[:] = [(monkeypatch, capsys)]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    monkeypatch, capsys = _capture[0]
    capsys.readouterr()  # what came before is not this command's
    code = run_cli_in_process(monkeypatch, *args)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["kgfuse", *args], code, out, err)


def _refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 1, one line on stderr that holds every word, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    said = " ".join(result.stderr.split())
    for word in words:
        assert word in said, said


def test_cli_predict_file_answers_the_texts_beside_one_too_long(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text(f"my cough\n{LONG}\na fever\n")
    out = tmp_path / "out.jsonl"
    result = run_cli("predict", str(tiny_bundle), "-i", str(texts), "-o", str(out), "--no-progress")
    _refused(result, "1 of 3 texts could not be classified (text 2", "too long")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["text"][:8] for line in lines] == ["my cough", LONG[:8], "a fever"]
    assert [line["label"] is not None for line in lines] == [True, False, True]
    assert lines[1]["error"]["code"] == "text_too_long"
    assert (
        "text 2 has 120,000 characters, over the linker's limit of 100,000"
        in (lines[1]["error"]["message"])
    )
    shown = run_cli("predict", str(tiny_bundle), "-i", str(texts), "--json")
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert len(shown.stdout.splitlines()) == 3


def test_cli_predict_a_text_over_spacys_limit_is_no_traceback(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """Over 1,000,000 characters spaCy itself refuses the text (before the linker's check)."""
    texts = tmp_path / "texts.txt"
    texts.write_text("flu " * 300_000 + "\nmy cough\n")
    result = run_cli("predict", str(tiny_bundle), "-i", str(texts), "--json")
    _refused(result, "1 of 2 texts could not be classified (text 1")
    answered = [json.loads(line) for line in result.stdout.splitlines()]
    assert answered[0]["error"]["code"] == "text_too_long" and answered[1]["label"]


def test_cli_predict_and_link_refuse_one_text_too_long_by_name(tiny_bundle: Path) -> None:
    _refused(
        run_cli("predict", str(tiny_bundle), LONG),
        "text 1 has 120,000 characters, over the linker's limit of 100,000",
        "split it",
    )
    _refused(
        run_cli("link", LONG, "--kg", str(LINKER_KG)),
        "the TEXT argument has 120,000 characters",
    )


def test_cli_link_file_links_the_texts_beside_one_too_long(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text(f"{LONG}\nmy cough\n")
    out = tmp_path / "links.jsonl"
    result = run_cli("link", "--kg", str(LINKER_KG), "-i", str(texts), "-o", str(out))
    _refused(result, "1 of 2 texts are too long to link (text 1", "every other text was linked")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["entities"] == [] and records[0]["error"]["code"] == "text_too_long"
    assert [e["text"] for e in records[1]["entities"]] == ["cough"]


def test_kg_load_delimited_quote_that_never_closes_names_its_line(tmp_path: Path) -> None:
    """A quote that never closes made one cell of every row after it: 'b c,d,e', silently."""
    for name, sep in (("facts.tsv", "\t"), ("facts.csv", ",")):
        facts = tmp_path / name
        rows = [["flu", "has symptom", "fever"], ["flu", "has symptom", '"cough'], ["a", "r", "b"]]
        facts.write_text("".join(sep.join(row) + "\n" for row in rows))
        result = run_cli("kg", "load", str(facts), "-o", str(tmp_path / "kg"))
        _refused(result, f'{facts}:2: a quote (") opened in this row never closes')
        assert not (tmp_path / "kg").exists()


def test_cli_field_over_the_csv_limit_is_not_called_a_quoting_mistake(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_text("text,label\nmy cough,flu\n" + "flu " * 40_000 + ",flu\n")
    result = run_cli("evaluate", str(tiny_bundle), str(texts))
    _refused(result, f"{texts}:3: a field of this row is longer than 131,072 characters")
    assert "quote a field that holds the delimiter" not in result.stderr
    facts = tmp_path / "facts.tsv"
    facts.write_text("flu\thas symptom\t" + "x" * 140_000 + "\n")
    result = run_cli("kg", "load", str(facts), "-o", str(tmp_path / "kg"))
    _refused(result, f"{facts}:1: a field of this row is longer than 131,072 characters")


def test_cli_a_header_that_names_a_column_twice_is_refused(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """predict read the first 'text' column and link the last, each without a word."""
    texts = tmp_path / "texts.csv"
    texts.write_text("text,text,label\nmy cough,Influenza,flu\n")
    twice = "the header names column 'text' twice (columns 1 and 2); rename one"
    _refused(run_cli("predict", str(tiny_bundle), "-i", str(texts), "--json"), twice)
    _refused(run_cli("link", "--kg", str(LINKER_KG), "-i", str(texts), "--json"), twice)
    labels = tmp_path / "labels.tsv"
    labels.write_text("text\tlabel\tlabel\nmy cough\tflu\tviral\n")
    _refused(
        run_cli("evaluate", str(tiny_bundle), str(labels)),
        f"{labels}:1: the header names column 'label' twice (columns 2 and 3)",
    )


def test_cli_a_bundle_given_as_a_kg_is_not_to_be_rebuilt(tiny_bundle: Path) -> None:
    """The old hint was `kgfuse kg load FILES... -o BUNDLE`: a KG written over the model."""
    run = tiny_bundle.parent
    for folder in (tiny_bundle, run):
        result = run_cli("kg", "stats", str(folder))
        _refused(result, f"the KG its model reads is the folder {tiny_bundle / 'kg'}: pass that")
        assert "kg load" not in result.stderr
    _refused(
        run_cli("kg", "path", "flu", "cough", "--kg", str(tiny_bundle)),
        f"{tiny_bundle} is a model bundle, not a compiled KG",
    )


def test_cli_an_oxigraph_store_given_as_a_compiled_kg_is_named_with_its_option(
    tiny_ttl: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    loaded = run_cli("kg", "load", "--backend", "oxigraph", str(tiny_ttl), "--store", str(store))
    assert loaded.returncode == 0, loaded.stderr
    result = run_cli("kg", "stats", str(store))
    _refused(result, f"{store} is an Oxigraph store", f"query it with --store {store}")
    assert "kg load FILES" not in result.stderr
    found = run_cli("kg", "neighbors", "flu", "--store", str(store))  # what the message says
    assert found.returncode == 0, found.stderr


def test_cli_a_run_or_kg_folder_given_as_a_bundle_names_the_bundle(
    tiny_bundle: Path, tiny_ttl: Path, tmp_path: Path
) -> None:
    run = tiny_bundle.parent
    _refused(
        run_cli("predict", str(run), "my cough"),
        f"{run} is a training run's folder, not a model bundle; its bundle is {tiny_bundle}",
    )
    _refused(
        run_cli("predict", str(tiny_bundle / "kg"), "my cough"),
        f"is the KG inside the bundle {tiny_bundle}: pass {tiny_bundle}",
    )
    compiled = tmp_path / "kg"
    assert run_cli("kg", "load", str(tiny_ttl), "-o", str(compiled)).returncode == 0
    _refused(
        run_cli("export", str(compiled), "-o", str(tmp_path / "out")),
        f"{compiled} is a compiled KG, not a model bundle",
    )
    assert not (tmp_path / "out").exists()


def test_cli_a_config_that_is_not_yaml_is_one_line_naming_file_line_and_fix(
    tmp_path: Path,
) -> None:
    """PyYAML's own message spans five lines, quotes the source and names the file
    "<unicode string>"; a tab, the commonest slip, got no fix."""
    tabbed = tmp_path / "tabbed.yaml"
    tabbed.write_text("kg:\n\tfiles: [facts.ttl]\n")
    result = run_cli("check", str(tabbed))
    _refused(result, f"{tabbed}:2:1: a tab indents this line; YAML indents with spaces only")
    assert "<unicode string>" not in result.stderr
    unclosed = tmp_path / "unclosed.yaml"
    unclosed.write_text("kg:\n  files: [a\ndata: {\n")
    _refused(
        run_cli("train", str(unclosed)),
        f"{unclosed}:3:5: not valid YAML: expected ',' or ']'",
        "from line 2",
    )
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("output: runs/caf\u00e9\n".encode("latin-1"))
    _refused(run_cli("check", str(latin1)), "is not UTF-8", "re-encode it as UTF-8")


def test_cli_validation_or_a_test_that_is_the_training_file_is_refused(tmp_path: Path) -> None:
    train = "tests/fixtures/tiny_train.csv"
    out = tmp_path / "run"
    result = run_cli(
        "check",
        "configs/tiny.yaml",
        f"data.val={FIXTURES / 'tiny_train.csv'}",  # the same file, by another path
        f"data.tests={{again: ./{train}}}",
        f"output={out}",
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    said = " ".join(result.stderr.split())
    assert f"data.val: is the training file ({train}): validation would score texts" in said
    assert "data.tests.again: is the training file" in said
    assert not out.exists()


def test_kg_load_a_file_whose_extension_lies_says_what_it_looks_like(tmp_path: Path) -> None:
    """RDF/XML saved as .ttl failed with "Invalid IRI code point ' '", JSON-LD with "{ is not a
    valid subject": nothing pointed at the file's name."""
    rdfxml = (
        '<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns:e="http://e/">\n<rdf:Description rdf:about="http://e/flu">'
        '<e:has_symptom rdf:resource="http://e/fever"/></rdf:Description>\n</rdf:RDF>\n'
    )
    jsonld = '{"@id": "http://e/flu", "http://e/has_symptom": {"@id": "http://e/fever"}}\n'
    turtle = "@prefix e: <http://e/> .\ne:flu e:has_symptom e:fever .\n"
    for name, content, looks, ext in (
        ("facts.ttl", rdfxml, "RDF/XML", ".rdf"),
        ("facts.nt", jsonld, "JSON-LD", ".jsonld"),
        ("facts.jsonld", turtle, "Turtle", ".ttl"),
    ):
        facts = tmp_path / name
        facts.write_text(content)
        result = run_cli("kg", "load", str(facts), "-o", str(tmp_path / "kg"))
        _refused(result, f"{facts}:", f"the file looks like {looks}", f"rename it to {ext}")
        renamed = facts.rename(facts.with_suffix(ext))  # the fix works
        assert run_cli("kg", "load", str(renamed), "-o", str(tmp_path / f"kg{ext}")).returncode == 0
    broken = tmp_path / "broken.nt"  # a plain syntax error gets no such hint
    broken.write_text("<http://e/a> <http://e/r> <http://e/b> .\n<http://e/b> <http://e/r> .\n")
    result = run_cli("kg", "load", str(broken), "-o", str(tmp_path / "kg"))
    _refused(result, f"{broken}:2:")
    assert "looks like" not in result.stderr


def test_cli_a_utf16_file_is_told_to_convert_from_utf16(tiny_bundle: Path, tmp_path: Path) -> None:
    """The old fix, `iconv -f latin1`, turns UTF-16 into text full of NUL characters."""
    from_utf16 = "it is UTF-16 (it starts with a UTF-16 byte-order mark): re-encode it as UTF-8"
    texts = tmp_path / "texts.csv"
    texts.write_text("text,label\nmy cough,flu\n", encoding="utf-16")
    facts = tmp_path / "facts.nt"
    facts.write_text("<http://e/flu> <http://e/has_symptom> <http://e/fever> .\n", "utf-16")
    config = tmp_path / "run.yaml"
    config.write_text("output: runs/x\n", encoding="utf-16")
    for result in (
        run_cli("predict", str(tiny_bundle), "-i", str(texts), "--json"),
        run_cli("evaluate", str(tiny_bundle), str(texts)),
        run_cli("kg", "load", str(facts), "-o", str(tmp_path / "kg")),
        run_cli("check", str(config)),
    ):
        _refused(result, from_utf16, "iconv -f utf-16 -t utf-8")
        assert "latin1" not in result.stderr
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text,label\nmy cough,flu\ncaf\u00e9 fever,flu\n".encode("latin-1"))
    _refused(
        run_cli("predict", str(tiny_bundle), "-i", str(latin1), "--json"),
        f"{latin1}:3: not UTF-8 (byte 0xe9 cannot be decoded)",
        "iconv -f latin1 -t utf-8",
    )


def test_cli_a_file_without_texts_says_what_it_lacks(tiny_bundle: Path, tmp_path: Path) -> None:
    """It said "no rows", which left a user with a header wondering what a row was missing."""
    header = tmp_path / "header.csv"
    header.write_text("text,label\n")
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    for result in (
        run_cli("predict", str(tiny_bundle), "-i", str(header), "--json"),
        run_cli("evaluate", str(tiny_bundle), str(header)),
    ):
        _refused(result, f"{header}: no rows, only the header; add one row per text under it")
    _refused(
        run_cli("link", "--kg", str(LINKER_KG), "-i", str(blank), "--json"),
        f"{blank}: no records (the file is blank); add one JSON object per line",
    )


def test_cli_evaluate_and_predict_check_their_output_before_the_model_runs(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """evaluate printed its metrics, then refused to write them; predict loaded the model."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("")
    under_a_file = f"{blocker} is a file, not a folder"
    data = FIXTURES / "tiny_test.csv"
    result = run_cli("evaluate", str(tiny_bundle), str(data), "--json", str(blocker / "m.json"))
    _refused(result, under_a_file)
    assert result.stdout == ""
    result = run_cli("predict", str(tmp_path / "no-bundle"), "my cough", "-o", str(blocker / "p"))
    _refused(result, under_a_file)


def test_cli_a_jsonl_record_that_gives_a_key_twice_is_refused(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """JSON keeps the last value without a word: "my cough" was never classified."""
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "a fever"}\n{"text": "my cough", "text": "flu"}\n')
    twice = f"{texts}:2: invalid JSON (the key 'text' is given twice in one object"
    _refused(run_cli("predict", str(tiny_bundle), "-i", str(texts), "--json"), twice)
    _refused(run_cli("link", "--kg", str(LINKER_KG), "-i", str(texts), "--json"), twice)


def test_cli_a_folder_without_an_extension_given_as_data_is_called_a_folder(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """It was "cannot read extensionless files", as if renaming it would help."""
    folder = tmp_path / "texts"
    folder.mkdir()
    a_folder = f"{folder} is a folder; give the file inside it"
    _refused(run_cli("predict", str(tiny_bundle), "-i", str(folder), "--json"), a_folder)
    _refused(run_cli("link", "--kg", str(LINKER_KG), "-i", str(folder), "--json"), a_folder)
    _refused(run_cli("check", "configs/tiny.yaml", f"data.train={folder}"), a_folder)


def test_cli_kg_path_from_an_entity_to_itself_says_it_is_one_entity(tiny_ttl: Path) -> None:
    """It said "no path of at most 3 hops joins 'Influenza' and 'Influenza'", as if the KG
    lacked one."""
    result = run_cli("kg", "path", "flu", "http://example.org/tiny/flu", "--kg", str(tiny_ttl))
    _refused(result, "'flu' and 'http://example.org/tiny/flu' are the same entity, 'Influenza'")
    assert "no path" not in result.stdout


def test_kg_load_a_truncated_gzip_says_to_fetch_it_again(tmp_path: Path) -> None:
    import gzip

    rows = "".join(f"<http://e/a{i}> <http://e/r> <http://e/b{i}> .\n" for i in range(5_000))
    packed = gzip.compress(rows.encode())
    facts = tmp_path / "facts.nt.gz"
    facts.write_bytes(packed[: len(packed) // 2])
    result = run_cli("kg", "load", str(facts), "-o", str(tmp_path / "kg"))
    _refused(result, f"{facts}: the gzip stream is corrupt or truncated", "download or compress")
    assert not (tmp_path / "kg").exists()


def test_cli_a_row_wider_than_the_header_is_refused_not_cut(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """An unquoted comma cut "I have a cough, and a fever" to "I have a cough" silently."""
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nmy cough\nI have a cough, and a fever\n")
    wider = f"{texts}:3: this row has 2 fields but the header names 1 column; a text that holds"
    _refused(run_cli("predict", str(tiny_bundle), "-i", str(texts), "--json"), wider)
    _refused(run_cli("link", "--kg", str(LINKER_KG), "-i", str(texts), "--json"), wider)
    trailing = tmp_path / "trailing.csv"  # an empty field after the last column is no text
    trailing.write_text("text,label\nmy cough,flu,\n")
    assert run_cli("evaluate", str(tiny_bundle), str(trailing)).returncode == 0


def test_cli_a_file_with_another_delimiter_says_which(tiny_bundle: Path, tmp_path: Path) -> None:
    """Excel saves "CSV" with semicolons in many locales: the header read as one column named
    'text;label', and the message left the user to work out why."""
    semicolons = tmp_path / "texts.csv"
    semicolons.write_text("text;label\nmy cough;flu\n")
    _refused(
        run_cli("evaluate", str(tiny_bundle), str(semicolons)),
        "its header 'text;label' is separated by semicolons, and a .csv file by commas",
    )
    tabs = tmp_path / "tabs.csv"
    tabs.write_text("text\tlabel\nmy cough\tflu\n")
    _refused(
        run_cli("predict", str(tiny_bundle), "-i", str(tabs), "--json"),
        "is separated by tabs, and a .csv file by commas: rename it .tsv",
    )
