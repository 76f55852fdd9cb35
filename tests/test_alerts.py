"""The shipped alert rules and dashboard name only metrics the service really exports.

promtool is not installed here, so the rules are not run through ``promtool check rules``;
instead this test parses ``deploy/prometheus/alerts.yml`` (PyYAML) and
``deploy/grafana/kgfuse.json``, pulls the metric names and label matchers out of every PromQL
expression, and checks them against ``GET /metrics`` of the app serving the tiny bundle (read
with prometheus_client's text parser). A renamed metric or label then fails here, not silently
in production as an alert that never fires.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.metrics import Metrics
from api.settings import ApiKeys, ServeSettings

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "kgfuse.json"
ADMIN = "a" * 20
# Series and labels that Prometheus itself adds to every scrape, not the service.
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"job", "instance"}
# A family's type -> the series names it has in PromQL (a histogram has no bare series).
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "unknown": ("",),
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACES = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_WORD = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?")


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (functions, keywords and labels left out)."""
    bare = _GROUPING.sub(" ", _BRACES.sub(" ", _STRING.sub('""', expr)))
    return {m[1] for m in _WORD.finditer(bare) if not m[2] and m[1].lower() not in KEYWORDS}


def label_matchers(expr: str) -> dict[str, set[str]]:
    """Series name -> the label names its ``{...}`` matchers use."""
    found: dict[str, set[str]] = {}
    for name, body in _SELECTOR.findall(expr):
        found.setdefault(name, set()).update(_MATCHER.findall(_STRING.sub('""', body)))
    return found


def exported(metrics_text: str) -> dict[str, set[str] | None]:
    """Series name -> its label names (None when no sample shows them yet), from /metrics."""
    series: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(metrics_text):
        for suffix in SERIES_SUFFIXES[family.type]:
            series[family.name + suffix] = None
        for sample in family.samples:
            labels = series.get(sample.name) or set()
            series[sample.name] = labels | set(sample.labels)
    return series


def problems(expr: str, series: dict[str, set[str] | None]) -> list[str]:
    """What in ``expr`` the service does not export, one line each; empty when all is there."""
    names = metric_names(expr)
    out = [] if names else [f"no metric found in {expr!r}"]
    for name in sorted(names - set(series) - PROMETHEUS_SERIES):
        out.append(f"{name}: not exported by /metrics")
    for name, used in label_matchers(expr).items():
        known = series.get(name)
        if known is not None and (unknown := used - known - TARGET_LABELS):
            out.append(f"{name}: no label {sorted(unknown)} (it has {sorted(known)})")
    return out


def rules() -> list[dict[str, Any]]:
    return [r for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]]


def panel_exprs() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p["targets"]]


@pytest.fixture(scope="module")
def series(tiny_bundle: Path) -> dict[str, Any]:
    """The series of /metrics after a prediction, a 4xx and the probes."""
    with TestClient(create_app(ServeSettings(bundle=tiny_bundle))) as c:
        assert c.post("/v1/predict", json={"texts": ["a bad case of influenza"]}).is_success
        assert c.post("/v1/predict", json={"texts": []}).status_code == 422
        assert c.get("/ready").is_success and c.get("/health").is_success
        return exported(c.get("/metrics").text)


# ----------------------------------------------------------------- the rules


def test_alerts_cover_errors_latency_queue_kg_and_model_with_actionable_annotations() -> None:
    by_name = {r["alert"]: r for r in rules()}
    reads = {name: metric_names(r["expr"]) for name, r in by_name.items()}
    assert "kgfuse_requests_total" in reads["KgfuseHighErrorRate"]
    assert "kgfuse_request_seconds_bucket" in reads["KgfuseHighLatencyP99"]
    assert {"kgfuse_queue_depth", "kgfuse_queue_size"} <= reads["KgfuseQueueSaturated"]
    assert "kgfuse_kg_info" in reads["KgfuseKgFingerprintChanged"]
    assert "kgfuse_model_loaded" in reads["KgfuseModelNotLoaded"]
    for rule in by_name.values():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_alerts_rule_reads_only_exported_metrics(rule: dict[str, Any], series: Any) -> None:
    assert problems(rule["expr"], series) == []


@pytest.mark.parametrize(("panel", "expr"), panel_exprs(), ids=[t for t, _ in panel_exprs()])
def test_alerts_dashboard_panel_reads_only_exported_metrics(
    panel: str, expr: str, series: Any
) -> None:
    assert problems(expr, series) == []


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("rate(kgfuse_request_latency_seconds_bucket[5m]) > 1", "kgfuse_request_latency_seconds"),
        ('sum(rate(kgfuse_requests{status="500"}[5m]))', "kgfuse_requests: not exported"),
        ("histogram_quantile(0.99, kgfuse_request_seconds) > 1", "kgfuse_request_seconds: not"),
        ('rate(kgfuse_requests_total{code=~"5.."}[5m]) > 0', "no label ['code']"),
        ("kgfuse_queue_depth / on (job) kgfuse_queue_capacity > 0.8", "kgfuse_queue_capacity"),
    ],
)
def test_alerts_a_rule_naming_a_missing_metric_or_label_fails(
    expr: str, complaint: str, series: Any
) -> None:
    found = problems(expr, series)
    assert found and complaint in " ".join(found)


# ----------------------------------------------------------------- the new metrics


def test_alerts_model_loaded_and_kg_fingerprint_follow_the_engine(tiny_bundle: Path) -> None:
    def scrape(text: str) -> dict[str, list[Any]]:
        return {f.name: f.samples for f in text_string_to_metric_families(text)}

    before = scrape(Metrics().render()[0].decode())
    assert before["kgfuse_model_loaded"][0].value == 0 and before["kgfuse_kg_info"] == []

    settings = ServeSettings(bundle=tiny_bundle, queue_size=17)
    with TestClient(create_app(settings)) as c:
        now = scrape(c.get("/metrics").text)
        fingerprint = c.get("/v1/model").json()["kg"]["fingerprint"]
    assert now["kgfuse_model_loaded"][0].value == 1
    assert now["kgfuse_queue_size"][0].value == 17
    assert [s.labels["fingerprint"] for s in now["kgfuse_kg_info"]] == [fingerprint]


def test_alerts_hot_triples_change_the_exported_fingerprint(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    facts = (
        "@prefix ex: <http://example.org/tiny/> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        'ex:h5n1 rdfs:label "avian strain" ; ex:causedBy ex:influenza_virus .\n'
    )

    def fingerprints(c: TestClient) -> list[str]:
        families = text_string_to_metric_families(c.get("/metrics").text)
        return [
            s.labels["fingerprint"]
            for f in families
            if f.name == "kgfuse_kg_info"
            for s in f.samples
        ]

    with TestClient(create_app(ServeSettings(bundle=bundle, keys=ApiKeys(admin=(ADMIN,))))) as c:
        (old,) = fingerprints(c)
        headers = {"content-type": "text/turtle", "Authorization": f"Bearer {ADMIN}"}
        assert c.post("/v1/kg/triples", content=facts, headers=headers).is_success
        (new,) = fingerprints(c)
    assert new != old
