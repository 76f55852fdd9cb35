"""Bundles carry a SHA-256 per file: a corrupted or incomplete bundle is refused, naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fusion.bundle import REQUIRED, BundleError, load_bundle, read_meta
from fusion.export import export_bundle
from fusion.manifest import sha256_file
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def meta(bundle: Path) -> dict:
    return json.loads((bundle / "bundle.json").read_text())


def one_line(result: object) -> str:
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr  # type: ignore[attr-defined]
    return lines[0]


def test_bundle_json_lists_the_sha256_of_every_other_file(bundle: Path) -> None:
    files = meta(bundle)["files"]
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    on_disk.discard("bundle.json")
    assert set(files) == on_disk and "model.safetensors" in files
    assert all(files[name] == sha256_file(bundle / name) for name in files)


def test_a_flipped_byte_is_refused_at_load_and_by_verify(bundle: Path) -> None:
    flip_a_byte(bundle / "model.safetensors")
    with pytest.raises(BundleError, match=r"model\.safetensors does not match its SHA-256"):
        load_bundle(bundle)
    result = run_cli("bundle", "verify", str(bundle))
    assert result.returncode == 1
    assert "model.safetensors does not match" in one_line(result)


def test_a_missing_listed_file_is_named(bundle: Path) -> None:
    (bundle / "kg" / "kg.json").unlink()
    with pytest.raises(BundleError, match=r"holds no kg/kg\.json, which bundle\.json lists"):
        load_bundle(bundle)


def test_verify_prints_one_ok_line_for_an_intact_bundle(bundle: Path) -> None:
    result = run_cli("bundle", "verify", str(bundle))
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith(f"OK {bundle}: {len(meta(bundle)['files'])} files")


def test_verify_refuses_a_folder_that_is_no_bundle(tmp_path: Path) -> None:
    result = run_cli("bundle", "verify", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "no model bundle" in one_line(result)


def test_hot_triples_written_while_serving_keep_the_bundle_valid(bundle: Path) -> None:
    from api.app import create_app
    from api.settings import ApiKeys, ServeSettings

    admin = "a" * 20
    settings = ServeSettings(bundle=bundle, keys=ApiKeys(admin=(admin,)))
    facts = b"<http://example.org/tiny/h5n1> <http://example.org/tiny/hasSymptom> <http://example.org/tiny/fever> ."
    with TestClient(create_app(settings)) as client:
        r = client.post(
            "/v1/kg/triples",
            content=facts,
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/n-triples"},
        )
        assert r.status_code == 200, r.text
    assert any((bundle / "hot-triples").iterdir())
    assert run_cli("bundle", "verify", str(bundle)).returncode == 0
    with TestClient(create_app(settings)) as client:  # a restart replays them: still loads
        assert client.get("/ready").status_code == 200


def test_a_bundle_without_checksums_is_refused_and_export_gives_it_them(
    bundle: Path, tmp_path: Path
) -> None:
    old = meta(bundle)
    del old["files"]
    (bundle / "bundle.json").write_text(json.dumps(old))
    with pytest.raises(BundleError, match=r"lists no file checksums.*kgfuse export"):
        load_bundle(bundle)
    exported = export_bundle(bundle, tmp_path / "exported", int8=True)
    assert run_cli("bundle", "verify", str(exported)).returncode == 0  # int8 edits bundle.json
    assert "encoder/model.safetensors" in meta(exported)["files"]
    load_bundle(exported)


def test_a_malformed_manifest_is_refused(bundle: Path) -> None:
    broken = meta(bundle)
    broken["files"] = {"../../etc/passwd": "0" * 64}
    (bundle / "bundle.json").write_text(json.dumps(broken))
    with pytest.raises(BundleError, match="'files' is not a map of relative paths"):
        load_bundle(bundle)


def _linker(resources: object) -> object:
    return resources.nlp.get_pipe("kg_linker")  # type: ignore[attr-defined]


def test_bundle_loads_its_linker_index_instead_of_building_it(bundle: Path) -> None:
    texts = ["a bad case of influenza with a cough", "covid-19 and a loss of smell", "nothing here"]
    assert (bundle / "kg" / "linker" / "meta.json").is_file()
    assert any(name.startswith("kg/linker/") for name in meta(bundle)["files"])
    _, resources, _ = load_bundle(bundle)
    assert _linker(resources).index_loaded  # type: ignore[attr-defined]
    shutil.rmtree(bundle / "kg" / "linker")  # the same bundle, its linker built in memory
    manifest = meta(bundle)["files"]
    (bundle / "bundle.json").write_text(
        json.dumps(
            {
                **meta(bundle),
                "files": {k: v for k, v in manifest.items() if not k.startswith("kg/linker/")},
            }
        )
    )
    _, built, _ = load_bundle(bundle)
    assert not _linker(built).index_loaded  # type: ignore[attr-defined]
    assert resources.link(texts) == built.link(texts) and resources.link(texts)[0]
    assert not (bundle / "kg" / "linker").exists()  # loading never writes into a bundle


def test_a_linker_index_of_another_kg_is_ignored_and_left_as_it_is(bundle: Path) -> None:
    index_meta = bundle / "kg" / "linker" / "meta.json"
    data = json.loads(index_meta.read_text())
    index_meta.write_text(json.dumps({**data, "kg_fingerprint": "0" * 64}))
    files = {**meta(bundle)["files"], "kg/linker/meta.json": sha256_file(index_meta)}
    (bundle / "bundle.json").write_text(json.dumps({**meta(bundle), "files": files}))
    before = index_meta.read_bytes()
    _, resources, _ = load_bundle(bundle)
    assert not _linker(resources).index_loaded  # type: ignore[attr-defined]
    assert resources.link(["influenza"])[0][0]["iri"].endswith("/flu")
    assert index_meta.read_bytes() == before


@pytest.mark.parametrize(
    ("bundle_json", "problem"),
    [
        ("{not json", r"bundle\.json is not valid JSON"),
        ('{"format": "kgfuse-kg", "format_version": 1}', r"does not describe a kgfuse bundle"),
        ('{"format": "kgfuse-bundle", "format_version": 1}', r"bundle format version 1, this"),
    ],
)
def test_a_bundle_json_of_another_kind_or_version_is_refused_with_the_fix(
    tmp_path: Path, bundle_json: str, problem: str
) -> None:
    for name in REQUIRED:
        (tmp_path / name).touch()
    (tmp_path / "bundle.json").write_text(bundle_json)
    with pytest.raises(BundleError, match=problem + r".*train it again with `kgfuse train"):
        read_meta(tmp_path)
