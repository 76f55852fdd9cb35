"""A model trained and served over a triple store (a real Oxigraph server, and an embedded
on-disk store) predicts what the same model over the compiled KG predicts, with the same paths;
its bundle refers to the store instead of embedding the KG."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ServeSettings
from fusion.predict import Predictor
from fusion.train import main as train
from kg.errors import KGFuseError, KGReadOnlyError
from tests.conftest import REPO, oxigraph_endpoint, oxigraph_store

pytestmark = pytest.mark.integration

TEXTS = [
    "a bad case of influenza with a fever",
    "covid-19 and a cough",
    "tiredness and sneezing all week",
    "nothing in the graph here",
    "a cold and sneezing",  # "cold" names a disease and a symptom: disambiguated
    "I feel cold, chills and fever",
]


@pytest.fixture(scope="module")
def endpoint(tiny_ttl: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with oxigraph_endpoint([tiny_ttl], tmp_path_factory.mktemp("tiny-oxigraph")) as url:
        yield url


@pytest.fixture(scope="module")
def embedded(tiny_ttl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return oxigraph_store([tiny_ttl], tmp_path_factory.mktemp("tiny-embedded"))


def _train(tiny_bert: Path, out: Path, *kg: str) -> Path:
    # probe_init set, as tiny.yaml sets hops: its auto choice asks the reference, which needs
    # the KG in memory, so a store would choose otherwise
    overrides = [
        f"encoder.path={tiny_bert}",
        f"output={out}",
        "train.threads=1",
        "train.probe_init=true",
        *kg,
    ]
    return Path(train(REPO / "configs" / "tiny.yaml", overrides, progress=False).bundle)


@pytest.fixture(scope="module")
def memory_bundle(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("memory-run") / "run"
    return _train(tiny_bert, out, "subgraph.counts=relations", "train.mask_label_facts=1.0")


@pytest.fixture(scope="module")
def store_bundle(tiny_bert: Path, endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store-run") / "run"
    return _train(
        tiny_bert,
        out,
        "kg.files=[]",
        f"kg.endpoint={endpoint}",
        "subgraph.counts=relations",
        "train.mask_label_facts=1.0",
    )


def _comparable(records: list[dict]) -> list[dict]:
    """Labels, links and paths; link scores only of unambiguous mentions (over a store the
    context signal's IDF is learnt from names alone: see nlp/disambiguation.py, `fit_on_contexts`)."""
    return [
        {
            "label": r["label"],
            "entities": [
                {k: v for k, v in e.items() if len(e["candidates"]) == 1 or k in LINK}
                for e in r["entities"]
            ],
            "paths": [(p["text"], p["hops"]) for p in r["paths"]],
        }
        for r in records
    ]


LINK = ("text", "start", "end", "iri", "label", "type")


def _assert_same_predictions(a: Predictor, b: Predictor) -> None:
    left = [p.model_dump() for p in a.predict(TEXTS, explain_paths=True, top_k_paths=3)]
    right = [p.model_dump() for p in b.predict(TEXTS, explain_paths=True, top_k_paths=3)]
    assert _comparable(left) == _comparable(right)
    assert any(r["paths"] for r in left), "the texts must exercise paths"
    for x, y in zip(left, right, strict=True):
        for label, p in x["probabilities"].items():
            assert y["probabilities"][label] == pytest.approx(p, abs=1e-4)
        for px, py in zip(x["paths"], y["paths"], strict=True):
            assert py["score"] == pytest.approx(px["score"], abs=1e-4)


def test_bundle_over_an_endpoint_refers_to_it_and_predicts_as_in_memory(
    memory_bundle: Path, store_bundle: Path, endpoint: str
) -> None:
    reference = json.loads((store_bundle / "kg" / "store.json").read_text())
    assert reference["source"] == endpoint
    assert not (store_bundle / "kg" / "index.safetensors").exists()  # no copy of the triples
    memory_meta = json.loads((memory_bundle / "bundle.json").read_text())
    store_meta = json.loads((store_bundle / "bundle.json").read_text())
    for split in ("val", "test:unseen"):  # trained to the same model
        assert store_meta["metrics"][split]["accuracy"] == memory_meta["metrics"][split]["accuracy"]
    _assert_same_predictions(Predictor.from_dir(memory_bundle), Predictor.from_dir(store_bundle))


def test_store_bundle_moves_to_an_embedded_store_with_the_same_triples(
    memory_bundle: Path, store_bundle: Path, embedded: Path
) -> None:
    """`kg_source` (`kgfuse serve --kg-endpoint`) re-points a bundle at a replica of its KG."""
    moved = Predictor.from_dir(store_bundle, kg_source=str(embedded))
    assert moved.resources.graph.source == str(embedded)
    _assert_same_predictions(Predictor.from_dir(memory_bundle), moved)


def test_training_over_an_embedded_store_matches_in_memory(
    tiny_bert: Path, memory_bundle: Path, embedded: Path, tmp_path: Path
) -> None:
    bundle = _train(
        tiny_bert,
        tmp_path / "run",
        "kg.files=[]",
        f"kg.store={embedded}",
        "subgraph.counts=relations",
        "train.mask_label_facts=1.0",
    )
    _assert_same_predictions(Predictor.from_dir(memory_bundle), Predictor.from_dir(bundle))


def test_store_resources_refuse_what_needs_a_compiled_kg(
    store_bundle: Path, memory_bundle: Path
) -> None:
    """Decided by the graph's capabilities: a store is read, never written, and has no whole
    CSR for the paths encoder's walks."""
    resources = Predictor.from_dir(store_bundle).resources
    assert resources.graph.compiled is None
    compiled = Predictor.from_dir(memory_bundle).resources.graph.compiled
    assert compiled is not None
    with pytest.raises(KGReadOnlyError, match="add triples to the store itself"):
        resources.with_graph(compiled)
    with pytest.raises(KGFuseError, match="the paths encoder needs a compiled KG"):
        resources.walking(True)
    assert resources.walking(False) is resources


@pytest.fixture
def client(store_bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    bundle = tmp_path / "bundle"
    shutil.copytree(store_bundle, bundle)
    settings = ServeSettings(bundle=bundle, max_wait_ms=0)
    with TestClient(create_app(settings)) as c:
        yield c


def test_service_over_a_store_predicts_and_looks_up_entities(client: TestClient) -> None:
    r = client.post("/v1/predict", json={"texts": TEXTS[:2], "explain": True})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["paths"]
    flu = client.get("/v1/kg/entities/Influenza")
    assert flu.status_code == 200, flu.text
    assert flu.json()["iri"] == "http://example.org/tiny/flu"
    assert {n["node"]["label"] for n in flu.json()["neighbors"]} >= {"fever", "cough"}
    search = client.get("/v1/kg/search", params={"q": "influensa"})
    assert search.json()["matches"][0]["label"] == "Influenza"
    paths = client.get("/v1/kg/paths", params={"source": "Influenza", "target": "COVID-19"})
    assert paths.status_code == 200 and paths.json()["paths"], paths.text
    model = client.get("/v1/model").json()
    assert model["kg"]["backend"] == "sparql"


def test_hot_triples_on_a_store_bundle_are_refused_with_409(
    store_bundle: Path, tmp_path: Path
) -> None:
    from api.settings import ApiKeys

    bundle = tmp_path / "bundle"
    shutil.copytree(store_bundle, bundle)
    admin = "a" * 24
    settings = ServeSettings(bundle=bundle, keys=ApiKeys(admin=(admin,)))
    with TestClient(create_app(settings)) as c:
        r = c.post(
            "/v1/kg/triples",
            content=b"<http://example.org/tiny/x> <http://example.org/tiny/hasSymptom> <http://example.org/tiny/fever> .",
            headers={"Content-Type": "application/n-triples", "Authorization": f"Bearer {admin}"},
        )
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "read_only"
    assert "add triples to the store itself" in r.json()["error"]["message"]
    assert not (bundle / "hot-triples").exists()


def test_unreachable_store_gives_503_naming_the_url(store_bundle: Path, tmp_path: Path) -> None:
    from tests.conftest import free_port

    bundle = tmp_path / "bundle"
    shutil.copytree(store_bundle, bundle)
    down = f"http://127.0.0.1:{free_port()}/query"  # nothing listens there
    settings = ServeSettings(bundle=bundle, kg_source=down)
    predictor_store = None
    with TestClient(create_app(settings)) as c:
        engine = c.app.state.engine  # type: ignore[attr-defined]
        predictor_store = engine.graph.store.client
        predictor_store.retries, predictor_store.backoff_s = 1, 0.01
        r = c.post("/v1/predict", json={"texts": ["covid-19 and a cough"]})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "kg_unavailable"
    assert down in r.json()["error"]["message"]


def test_corrupt_store_reference_names_the_file(store_bundle: Path, tmp_path: Path) -> None:
    from fusion.bundle import BundleError
    from kg.errors import KGStoreError
    from kg.store_graph import StoreGraph

    bundle = tmp_path / "bundle"
    shutil.copytree(store_bundle, bundle)
    (bundle / "kg" / "store.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"kg/store.json does not match its SHA-256"):
        Predictor.from_dir(bundle)
    with pytest.raises(KGStoreError, match=r"kg/store.json is not valid JSON .*train the model"):
        StoreGraph.open(bundle / "kg")
