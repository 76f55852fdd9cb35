"""Hostile triples: RDF/XML entity bombs are refused before parsing; literals are bounded."""

from __future__ import annotations

import gzip
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient

import kg
from kg.guards import ReadLimits
from tests.conftest import run_cli

EX = "http://example.org/tiny/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
MB = 1 << 20
# The "billion laughs": 10^9 copies of "lol" (3 GB) from under a kilobyte.
LOLS = "\n".join(
    f' <!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' if n else ' <!ENTITY lol0 "lol">'
    for n in range(10)
)
BOMB = f"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [
{LOLS}
]>
<rdf:RDF xmlns:rdf="{RDF}" xmlns:rdfs="{RDFS}">
  <rdf:Description rdf:about="{EX}bomb"><rdfs:label>&lol9;</rdfs:label></rdf:Description>
</rdf:RDF>
"""
PLAIN = f"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF>
<rdf:RDF xmlns:rdf="{RDF}" xmlns:rdfs="{RDFS}" xmlns:ex="{EX}">
  <rdf:Description rdf:about="{EX}a"><rdfs:label>A</rdfs:label><ex:near rdf:resource="{EX}b"/></rdf:Description>
</rdf:RDF>
"""


def rss() -> int:
    return psutil.Process().memory_info().rss


@pytest.fixture
def bomb(tmp_path: Path) -> Path:
    path = tmp_path / "bomb.rdf"
    path.write_text(BOMB, encoding="utf-8")
    return path


@pytest.mark.parametrize("parser", ["oxigraph", "rdflib"])
def test_load_refuses_entity_declarations_without_expanding_them(bomb: Path, parser: str) -> None:
    before = rss()
    with pytest.raises(kg.KGLoadError, match="entity declarations are refused") as info:
        kg.load(bomb, parser=parser)
    assert info.value.path == str(bomb) and info.value.line == 2  # the DOCTYPE's line
    assert rss() - before < 200 * MB


def test_load_refuses_a_gzipped_bomb_and_one_in_an_encoding_expat_cannot_read(
    tmp_path: Path,
) -> None:
    packed = tmp_path / "bomb.rdf.gz"
    packed.write_bytes(gzip.compress(BOMB.encode()))
    odd = tmp_path / "odd.rdf"
    odd.write_text(BOMB.replace('version="1.0"?>', 'version="1.0" encoding="x-odd"?>'))
    for path in (packed, odd):
        with pytest.raises(kg.KGLoadError, match="entity declarations are refused"):
            kg.load(path)


def test_a_doctype_without_declarations_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "plain.rdf"
    path.write_text(PLAIN, encoding="utf-8")
    graph = kg.load(path)
    assert graph.num_triples == 1 and graph.label(graph.resolve(EX + "a")) == "A"


def test_cli_refuses_the_bomb_in_one_line_for_both_backends(bomb: Path, tmp_path: Path) -> None:
    for args in (
        ["-o", str(tmp_path / "out")],
        ["--backend", "oxigraph", "--store", str(tmp_path / "s")],
    ):
        result = run_cli("kg", "load", str(bomb), *args)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "entity declarations are refused" in lines[0], result.stderr
        assert "Traceback" not in result.stderr


def deep_json_ld(depth: int) -> str:
    return f'{{"@id": "{EX}s", "{EX}p": ' * depth + f'{{"@id": "{EX}o"}}' + "}" * depth


@pytest.mark.parametrize("parser", ["oxigraph", "rdflib"])
def test_deeply_nested_json_ld_is_refused_before_the_parser_overflows(
    tmp_path: Path, parser: str
) -> None:
    """pyoxigraph's JSON-LD parser crashes the process (SIGSEGV) near 4,000 levels."""
    path = tmp_path / "deep.jsonld"
    path.write_text(deep_json_ld(5_000), encoding="utf-8")
    with pytest.raises(kg.KGLoadError, match=r"more than 256 deep \(max_json_depth\)"):
        kg.load(path, parser=parser)
    path.write_text(deep_json_ld(100), encoding="utf-8")
    assert kg.load(path, parser=parser).num_entities == 2  # s (nested in itself) and o
    result = run_cli("kg", "load", str(path.with_name("deep.jsonld")), "-o", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr


def ttl(label: str, description: str) -> str:
    return (
        f"<{EX}x> <{RDFS}label> {label!r} ;\n"
        f'    <{RDFS}comment> "{description}" ;\n'
        f"    <{EX}near> <{EX}y> .\n"
    )


@pytest.mark.parametrize("parser", ["oxigraph", "rdflib"])
def test_a_literal_over_the_limit_is_refused_naming_the_limit(tmp_path: Path, parser: str) -> None:
    path = tmp_path / "long.ttl"
    limits = ReadLimits(max_literal_chars=100, max_label_chars=10)
    path.write_text(ttl("ok", "d" * 100), encoding="utf-8")
    assert kg.load(path, parser=parser, limits=limits).num_triples == 1  # at the limit: fine
    path.write_text(ttl("ok", "d" * 101), encoding="utf-8")
    with pytest.raises(kg.KGLoadError, match=r"101 characters .* limit of 100 \(max_literal"):
        kg.load(path, parser=parser, limits=limits)
    path.write_text(ttl("a label too long", "short"), encoding="utf-8")
    with pytest.raises(kg.KGLoadError, match=r"label .* 16 characters .* limit of 10 \(max_label"):
        kg.load(path, parser=parser, limits=limits)


def test_a_delimited_name_over_the_label_limit_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "long.tsv"
    path.write_text("head\trelation\ttail\nflu\tcauses\tfever\nflu\tcauses\t" + "x" * 11 + "\n")
    with pytest.raises(kg.KGLoadError, match="max_label_chars") as info:
        kg.load(path, limits=ReadLimits(max_label_chars=10))
    assert info.value.line == 3


def test_extend_triples_bounds_literal_rows(tiny_kg: kg.KnowledgeGraph) -> None:
    with pytest.raises(kg.KGLoadError, match="max_literal_chars"):
        kg.extend_triples(
            tiny_kg, [(EX + "flu", RDFS + "comment", "x" * 30)], ReadLimits(max_literal_chars=20)
        )


def test_limits_must_be_positive() -> None:
    with pytest.raises(kg.KGFuseError, match="max_label_chars must be at least 1"):
        ReadLimits(max_label_chars=0)


@pytest.mark.integration
def test_admin_triples_route_refuses_the_bomb_with_a_422(tiny_bundle: Path, tmp_path: Path) -> None:
    from api.app import create_app
    from api.settings import ApiKeys, ServeSettings

    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    admin = "a" * 20
    settings = ServeSettings(bundle=bundle, keys=ApiKeys(admin=(admin,)))
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/rdf+xml"}
        before = rss()
        r = client.post("/v1/kg/triples", content=BOMB.encode(), headers=headers)
        grown = rss() - before
        assert r.status_code == 422, r.text
        assert "entity declarations are refused" in r.json()["error"]["message"]
        assert grown < 200 * MB
        long_label = f'<{EX}z> <{RDFS}label> "{"z" * 10_001}" .'
        headers["Content-Type"] = "text/turtle"
        r = client.post("/v1/kg/triples", content=long_label.encode(), headers=headers)
        assert r.status_code == 422 and "max_label_chars" in r.json()["error"]["message"]
        headers["Content-Type"] = "application/ld+json"
        r = client.post("/v1/kg/triples", content=deep_json_ld(5_000).encode(), headers=headers)
        assert r.status_code == 422 and "max_json_depth" in r.json()["error"]["message"]
        assert not (bundle / "hot-triples").exists()  # nothing half-written


@pytest.fixture
def web_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server: its URL, and the paths it was asked for."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps({"@context": {"name": f"{RDFS}label"}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/ld+json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()


@pytest.mark.parametrize("parser", ["oxigraph", "rdflib"])
@pytest.mark.parametrize("context", ["@context", "@import"])
def test_a_json_ld_context_given_by_url_is_refused_without_fetching_it(
    tmp_path: Path, web_server: tuple[str, list[str]], context: str, parser: str
) -> None:
    """pyoxigraph refuses a remote context, but its error carried no line, and rdflib, asked to
    find the line, fetched the URL: `POST /v1/kg/triples` made the server request any URL an
    admin named (one that never answers held the KG's lock for ever). The rdflib parser
    (``--parser rdflib``) fetched it and loaded the document."""
    url, asked = web_server
    value = f"{url}/ctx" if context == "@context" else {"@import": f"{url}/ctx"}
    document = {"@context": value, "@id": f"{EX}x", "name": "x"}
    path = tmp_path / "remote.jsonld"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(kg.KGLoadError) as info:
        kg.load(path, parser=parser)
    assert asked == []  # nothing fetched
    assert "fetches nothing over the network" in str(info.value)
    assert '"@context": {...}' in str(info.value)
