"""Alias tables from the shell and in trained bundles: `kgfuse aliases learn`, `kgfuse link
--aliases`, `linker.aliases` in a run config (the table travels in the bundle)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import kg
from fusion.bundle import BundleError, load_bundle
from fusion.export import export_bundle
from fusion.train import main
from nlp.alias_table import AliasTable
from tests.conftest import FIXTURES, run_cli

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
TINY_KG = FIXTURES / "tiny.ttl"
FATIGUE = "http://example.org/tiny/fatigue"


@pytest.fixture()
def labelled(tmp_path: Path) -> Path:
    """Texts labelled with disease names (labels the KG resolves by itself)."""
    rows = [
        ("I am worn out and feverish", "Influenza"),
        ("worn out all week, with a cough", "Influenza"),
        ("so worn out since Monday", "Influenza"),
        ("a cough and sneezing", "Common cold"),
        ("sneezing all day", "Hay fever"),
    ]
    path = tmp_path / "labelled.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    return path


def test_cli_aliases_learn_writes_a_table_of_label_neighbours(
    tiny_bert: Path, labelled: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "aliases.tsv"
    result = run_cli(
        "aliases",
        "learn",
        str(labelled),
        "--kg",
        str(TINY_KG),
        "-o",
        str(out),
        "--encoder-dir",
        str(tiny_bert),
        "--min-similarity",
        "0",
        "--min-precision",
        "0",
    )
    assert result.returncode == 0, result.stderr
    assert f"-> {out}" in result.stdout
    table = AliasTable.load(out)
    graph = kg.load(TINY_KG)
    neighbours = {
        graph.iri(n.node)
        for label in ("Influenza", "Common cold", "Hay fever")
        for n in graph.neighbors_of(graph.resolve(label))
    }
    assert len(table) >= 1  # the random encoder aligns something at similarity 0
    assert {row.entity for row in table.rows} <= neighbours
    assert all(row.support is not None and row.support >= 2 for row in table.rows)
    assert sorted(p.name for p in out.parent.iterdir()) == ["aliases.tsv"]


def test_cli_aliases_learn_bad_input_exits_1_with_a_clear_line(
    tiny_bert: Path, labelled: Path, tmp_path: Path
) -> None:
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("text,label\na cough,viral\n")
    lonely = tmp_path / "lonely.csv"  # Anosmia has no neighbour in the KG: nothing to learn
    lonely.write_text("text,label\ncannot smell a thing,Anosmia\nno smell at all,Anosmia\n")
    no_label = tmp_path / "nolabel.csv"
    no_label.write_text("text\na cough\n")
    out = str(tmp_path / "a.tsv")
    common = ["--kg", str(TINY_KG), "-o", out, "--encoder-dir", str(tiny_bert)]
    cases = [
        (["aliases", "learn", str(unknown), *common], "pass --label-map"),
        (["aliases", "learn", str(no_label), *common], "no column 'label'"),
        (["aliases", "learn", str(tmp_path / "none.csv"), *common], "not found"),
        (["aliases", "learn", str(lonely), *common], "learned no alias from 2 texts"),
    ]
    not_a_model = ["aliases", "learn", str(labelled), "--kg", str(TINY_KG), "-o", out]
    not_a_model += ["--encoder-dir", str(tmp_path)]
    cases.append((not_a_model, "not a sentence-transformers BERT folder"))
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not Path(out).exists()


def test_cli_link_with_an_alias_table(tmp_path: Path) -> None:
    table = tmp_path / "aliases.tsv"
    table.write_text(f"alias\tentity\nworn out\t{FATIGUE}\nthrowing up\tfever\n")
    result = run_cli("link", "--kg", str(TINY_KG), "--aliases", str(table), "I am so worn out")
    assert result.returncode == 0, result.stderr
    assert "1 linked" in result.stdout and FATIGUE in result.stdout
    without = run_cli("link", "--kg", str(TINY_KG), "I am so worn out")
    assert "0 linked" in without.stdout
    bad = tmp_path / "bad.tsv"
    bad.write_text("alias\tentity\nworn out\n")
    result = run_cli("link", "--kg", str(TINY_KG), "--aliases", str(bad), "worn out")
    assert result.returncode == 1
    assert f"{bad}:2: expected 2 tab-separated columns" in result.stderr
    assert "Traceback" not in result.stderr


def test_trained_bundle_carries_its_alias_table(tiny_bert: Path, tmp_path: Path) -> None:
    table = tmp_path / "aliases.tsv"
    table.write_text(f"alias\tentity\nworn out\t{FATIGUE}\n")
    out = tmp_path / "run"
    overrides = [
        f"encoder.path={tiny_bert}",
        f"output={out}",
        "train.threads=1",
        "train.epochs=1",
        f"linker.aliases={table}",
    ]
    bundle = Path(main(TINY, overrides, progress=False).bundle)
    table.unlink()  # the bundle must not depend on the original file
    assert (bundle / "aliases.tsv").is_file()
    assert json.loads((bundle / "bundle.json").read_text())["linker"]["aliases"] == "aliases.tsv"
    _, resources, _ = load_bundle(bundle)
    (prepared,) = resources.prepare(["Influenza and worn out"])
    assert resources.graph.entity_id(FATIGUE) in prepared.linked
    exported = export_bundle(bundle, tmp_path / "exported")  # a merged copy keeps it too
    assert (exported / "aliases.tsv").read_text() == (bundle / "aliases.tsv").read_text()
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "aliases.tsv").unlink()
    with pytest.raises(BundleError, match=r"holds no aliases\.tsv"):
        load_bundle(broken)
