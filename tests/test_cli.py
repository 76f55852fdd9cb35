"""The `kgfuse kg` commands: exit codes, readable errors, and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kg

from .conftest import REPO, run_cli


def test_cli_load_compiles_a_folder_that_opens(tiny_ttl: Path, tmp_path: Path) -> None:
    out = tmp_path / "compiled"
    result = run_cli("kg", "load", str(tiny_ttl), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "triples" in result.stdout and "11" in result.stdout
    assert kg.open(out).fingerprint == kg.load(tiny_ttl).fingerprint


def test_cli_load_bad_file_exits_1_with_one_line_and_writes_nothing(
    tiny_ttl: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.nt"
    bad.write_text("<http://a> <http://b> <http://c> .\n<http://a> <http://b> oops .\n")
    out = tmp_path / "compiled"
    result = run_cli("kg", "load", str(tiny_ttl), str(bad), "-o", str(out))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {bad}:2: syntax error")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nt"]


def test_cli_stats_search_path_and_neighbors(tiny_ttl: Path, tmp_path: Path) -> None:
    out = tmp_path / "compiled"
    assert run_cli("kg", "load", str(tiny_ttl), "-o", str(out)).returncode == 0
    stats = run_cli("kg", "stats", str(out))
    assert stats.returncode == 0 and "entities" in stats.stdout
    search = run_cli("kg", "search", "influensa", "--kg", str(out))
    assert search.returncode == 0 and "http://example.org/tiny/flu" in search.stdout
    path = run_cli("kg", "path", "flu", "SARS-CoV-2", "--kg", str(out), "-k", "1")
    assert path.returncode == 0
    assert (
        "Influenza --has symptom--> fever <--has symptom-- COVID-19 --caused by--> SARS-CoV-2"
        in path.stdout
    )
    nbrs = run_cli("kg", "neighbors", "cough", "--kg", str(tiny_ttl))  # a triples file works too
    assert nbrs.returncode == 0 and "Common cold" in nbrs.stdout


def test_cli_query_errors_exit_non_zero_without_traceback(tiny_ttl: Path, tmp_path: Path) -> None:
    ambiguous = run_cli("kg", "path", "cold", "fever", "--kg", str(tiny_ttl))
    assert ambiguous.returncode == 1 and "names 2 entities" in ambiguous.stderr
    no_path = run_cli("kg", "path", "flu", "Anosmia", "--kg", str(tiny_ttl))
    assert no_path.returncode == 1 and "no path" in no_path.stdout
    missing = run_cli("kg", "stats", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "file not found" in missing.stderr
    usage = run_cli("kg", "load", str(tiny_ttl))  # no -o
    assert usage.returncode == 2
    for r in (ambiguous, no_path, missing, usage):
        assert "Traceback" not in r.stderr


LINKER_KG = Path(__file__).parent / "fixtures" / "linker.ttl"


def test_cli_link_one_text_prints_a_table() -> None:
    result = run_cli("link", "--kg", str(LINKER_KG), "Influenza with a runny nose")
    assert result.returncode == 0, result.stderr
    assert "2 linked" in result.stdout and "runny nose" in result.stdout


def test_cli_link_file_writes_jsonl_atomically(tmp_path: Path) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_text('id,body\n1,"A cough, then a runny nose"\n2,nothing to see here\n')
    out = tmp_path / "out" / "linked.jsonl"
    result = run_cli(
        "link", "--kg", str(LINKER_KG), "-i", str(texts), "--text-column", "body", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "linked 1 of 2 texts" in result.stdout
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["id"] == "1" and [e["iri"] for e in first["entities"]] == [
        "http://example.org/med/cough",
        "http://example.org/med/runny_nose",
    ]
    assert first["entities"][0]["start"] == 2 and first["entities"][0]["end"] == 7
    assert second["entities"] == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["linked.jsonl"]


def test_cli_link_bad_input_exits_1_with_a_clear_line(tmp_path: Path) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_text("id,body\n1,a cough\n")
    cases = [
        (
            ["link", "--kg", str(LINKER_KG), "-i", str(texts), "-o", str(tmp_path / "o.jsonl")],
            "no column 'text'",
        ),
        (["link", "--kg", str(LINKER_KG)], "either a TEXT argument or --input"),
        (["link", "--kg", str(tmp_path / "nokg"), "a cough"], "file not found"),
        (["link", "--kg", str(LINKER_KG), "-i", str(texts)], "needs --output"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 1, args
        assert message in result.stderr and "Traceback" not in result.stderr


# ----------------------------------------------------------------- --json, for scripts

LONG = "http://example.org/a/namespace/long/enough/that/a/forty/column/table/cuts/it/"
LONG_KG = f"""@prefix ex: <{LONG}> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:quokka_fever rdfs:label "quokka fever" ; ex:hasSymptom ex:whisker_itch .
ex:whisker_itch rdfs:label "whisker itch" .
ex:wombat_pox rdfs:label "wombat pox" ; ex:hasSymptom ex:whisker_itch .
ex:lonely rdfs:label "lonely island" .
"""


def _long_kg(folder: Path) -> Path:
    path = folder / "long.ttl"
    path.write_text(LONG_KG, encoding="utf-8")
    return path


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_cli_kg_path_json_prints_one_object_per_path_with_full_iris(tmp_path: Path) -> None:
    graph = str(_long_kg(tmp_path))
    table = run_cli("kg", "path", "quokka fever", "wombat pox", "--kg", graph, columns=40)
    assert table.returncode == 0, table.stderr
    assert LONG + "whisker_itch" not in table.stdout  # what --json is for
    result = run_cli(
        "kg", "path", "quokka fever", "wombat pox", "--kg", graph, "--json", columns=40
    )
    assert result.returncode == 0, result.stderr
    (path,) = _json_lines(result.stdout)
    assert path["text"] == "quokka fever --has symptom--> whisker itch <--has symptom-- wombat pox"
    assert path["hops"] == [
        {
            "subject": {"iri": LONG + "quokka_fever", "label": "quokka fever"},
            "predicate": {"iri": LONG + "hasSymptom", "label": "has symptom"},
            "object": {"iri": LONG + "whisker_itch", "label": "whisker itch"},
        },
        {
            "subject": {"iri": LONG + "wombat_pox", "label": "wombat pox"},
            "predicate": {"iri": LONG + "hasSymptom", "label": "has symptom"},
            "object": {"iri": LONG + "whisker_itch", "label": "whisker itch"},
        },
    ]
    assert isinstance(path["score"], float) and 0 < path["score"] < 1


def test_cli_kg_path_json_without_a_path_exits_1_and_prints_nothing_on_stdout(
    tmp_path: Path,
) -> None:
    graph = str(_long_kg(tmp_path))
    result = run_cli("kg", "path", "quokka fever", "lonely island", "--kg", graph, "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert "no path of at most 3 hops" in result.stderr and "Traceback" not in result.stderr


def test_cli_link_json_prints_one_object_per_text_with_full_iris(tmp_path: Path) -> None:
    graph = str(_long_kg(tmp_path))
    text = "a bad case of quokka fever"
    table = run_cli("link", "--kg", graph, text, columns=40)
    assert table.returncode == 0, table.stderr
    assert LONG + "quokka_fever" not in table.stdout  # what --json is for
    one = run_cli("link", "--kg", graph, text, "--json", columns=40)
    assert one.returncode == 0, one.stderr
    (record,) = _json_lines(one.stdout)
    assert record["text"] == text
    (entity,) = record["entities"]
    assert entity["iri"] == LONG + "quokka_fever" and text[entity["start"] : entity["end"]] == (
        "quokka fever"
    )
    texts = tmp_path / "texts.csv"
    texts.write_text("id,text\n7,whisker itch again\n8,nothing here\n", encoding="utf-8")
    many = run_cli("link", "--kg", graph, "-i", str(texts), "--json", columns=40)
    assert many.returncode == 0, many.stderr
    first, second = _json_lines(many.stdout)
    assert first["id"] == "7" and [e["iri"] for e in first["entities"]] == [LONG + "whisker_itch"]
    assert second == {"id": "8", "text": "nothing here", "entities": []}


def test_cli_link_json_and_output_together_are_refused(tmp_path: Path) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_text("text\na cough\n", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    result = run_cli("link", "--kg", str(LINKER_KG), "-i", str(texts), "-o", str(out), "--json")
    assert result.returncode == 1 and "pass one" in result.stderr and not out.exists()


def test_cli_version_names_kgfuse_and_the_libraries_it_runs_on() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and r.stderr == ""
    line = r.stdout.strip()
    assert line.startswith("kgfuse 0.") and "torch 2." in line and "transformers " in line, line
    assert "not installed" not in line  # every library kgfuse needs is found
    train = run_cli("train", "--help")  # the callback leaves commands alone
    assert train.returncode == 0 and "Usage: " in train.stdout


def test_tune_table_writes_a_chosen_auto_as_best_yaml_does() -> None:
    from fusion.cli import setting_text

    assert [setting_text(v) for v in (None, 0.000123456, 3, True)] == [
        "auto",
        "0.0001235",
        "3",
        "True",
    ]


def test_cli_writes_kgfuse_warnings_as_one_line_and_others_as_python_does(tmp_path: Path) -> None:
    from api.cli import warning_line
    from fusion.selection import SelectionWarning

    ours = warning_line("no val:unseen texts", SelectionWarning, "/x/fusion/selection.py", 64)
    assert ours == "warning: no val:unseen texts\n"
    raised_here = warning_line("no labels", UserWarning, str(REPO / "nlp" / "linker.py"), 303)
    assert raised_here == "warning: no labels\n"  # a plain UserWarning from kgfuse's code
    foreign = warning_line("deprecated", DeprecationWarning, str(tmp_path / "lib.py"), 7)
    assert "lib.py:7: DeprecationWarning: deprecated" in foreign

    unlabelled = tmp_path / "kg.nt"  # no rdfs:label: the linker warns and matches local names
    unlabelled.write_text("<http://ex.org/fever> <http://ex.org/sign_of> <http://ex.org/flu> .\n")
    r = run_cli("link", "--kg", str(unlabelled), "a fever since monday")
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if "no labels" in line]
    assert warned and warned[0].startswith("warning: the KG has no labels"), r.stderr
    assert ".py:" not in r.stderr and "Warning:" not in r.stderr
