"""The statistics and target helpers of bench/serve.py (no server is started)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "bench" / "serve.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_serve", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_serve"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench_serve"]


@pytest.mark.parametrize("values", [[5.0], [3.0, 1.0], [4.0, 1.0, 9.0, 2.0, 7.0, 7.0]])
@pytest.mark.parametrize("q", [0, 50, 95, 99, 100])
def test_percentile_matches_numpy(bench, values, q):
    assert bench.percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_percentile_and_ratio_of_nothing(bench):
    assert bench.percentile([], 50) is None
    assert bench.ratio(None, 2.0) is None
    assert bench.ratio(1.0, 0.0) is None
    assert bench.ratio(3.0, 2.0) == 1.5


def test_summary_counts_errors_apart(bench):
    m = bench.Measurement("text", clients=2, explain=False, seconds=2.0)
    for latency in (10.0, 20.0, 30.0):
        m.record(latency, None, {"model_ms": latency / 2})
    for error in ("503", "503", "ReadTimeout"):
        m.record(1.0, error, {})
    s = m.summary()
    assert s["requests_ok"] == 3 and s["requests_per_s"] == 1.5 and s["p50_ms"] == 20.0
    assert s["errors"] == 3 and s["error_kinds"] == {"503": 2, "ReadTimeout": 1}
    assert s["server_p50_ms"] == {"model_ms": 10.0}


def row(model, clients, rps, p50, explain=False, errors=0):
    return {
        "model": model,
        "clients": clients,
        "explain": explain,
        "requests_per_s": rps,
        "p50_ms": p50,
        "errors": errors,
    }


def test_ratios_and_targets(bench):
    rows = [
        row("text", 1, 100.0, 10.0),
        row("text", 32, 250.0, 120.0),
        row("fused", 1, 80.0, 12.0),
        row("fused", 32, 320.0, 100.0, errors=1),
        row("fused", 1, 50.0, 20.0, explain=True),
        row(bench.UNBATCHED, 32, 160.0, 200.0),
    ]
    bench.add_ratios(rows)
    assert rows[5]["throughput_vs_c1"] == 2.0  # the unbatched control: against fused at 1
    assert rows[3]["throughput_vs_c1"] == 4.0 and rows[2]["p50_vs_baseline"] == 1.2
    assert rows[4]["p50_baseline"] == "no explain"
    assert rows[4]["p50_vs_baseline"] == pytest.approx(20 / 12)
    shutdowns = {"text": {"graceful": True}, "fused": {"graceful": False}}
    values = bench.target_values(rows, shutdowns, {"server_errors": 0})
    checked = {t["measure"]: t["ok"] for t in bench.targets(values)}
    assert checked == {
        "total_errors": False,
        "fused_vs_text_p50_c1": True,
        "fused_throughput_c32_vs_c1": True,
        "explain_p50_overhead": False,
        "batching_gain_c32": True,  # 320 / 160 req/s
        "schemathesis_server_errors": True,
        "graceful_shutdowns_failed": False,
        "innocent_answered_share": None,  # no reliability section measured
        "insert_p99_ratio": None,
        "corrupt_refused_share": None,
    }
    unmeasured = bench.targets(bench.target_values(rows, shutdowns, None))
    assert [t["ok"] for t in unmeasured if t["measure"] == "schemathesis_server_errors"] == [None]


def test_reliability_figures_meet_or_miss_their_targets(bench):
    reliability = {
        "fuzzing": {"test_cases": 448, "server_errors_seen": 0},
        "mixed_batches": {"innocent_answered": 209, "innocent_sent": 210},
        "xml_bomb": {"max_rss_growth_mib": 3.5},
        "large_insert": {"p99_ratio": 1.6},
        "corrupted_bundles": {"tried": 7, "refused": 7},
    }
    values = bench.target_values([], {}, None, reliability)
    checked = {t["measure"]: t["ok"] for t in bench.targets(values)}
    assert checked["innocent_answered_share"] is False  # one innocent text was not answered
    assert checked["insert_p99_ratio"] is True and checked["corrupt_refused_share"] is True
    assert checked["total_errors"] is None and checked["graceful_shutdowns_failed"] is None


def test_report_paths_are_relative_to_the_repository(bench, tmp_path):
    report = {
        "bundle": bench.REPO / "runs" / "demo" / "fused" / "bundle",
        "commands": [
            [bench.sys.executable, str(bench.REPO / "bench" / "serve.py")],
            [str(bench.Path(bench.sys.executable).with_name("schemathesis")), "run"],
        ],
        "report": f"{bench.tempfile.gettempdir()}/bench-serve-st-x/report.json",
    }
    assert bench.relative(report) == {
        "bundle": "runs/demo/fused/bundle",
        "commands": [["python", "bench/serve.py"], ["schemathesis", "run"]],
        "report": "$TMPDIR/bench-serve-st-x/report.json",
    }


def test_a_partial_run_keeps_the_other_parts_of_the_report(bench, tmp_path):
    path = tmp_path / "serve.json"
    path.write_text('{"rows": [1], "shutdowns": {"text": 1}, "schemathesis": {"a": 1}}')
    fresh = {"rows": None, "shutdowns": None, "schemathesis": {"a": 2}, "reliability": {"b": 1}}
    assert bench.merged(fresh, path) == {
        "rows": [1],
        "shutdowns": {"text": 1},
        "schemathesis": {"a": 2},
        "reliability": {"b": 1},
        "kept_from_previous_run": ["rows", "shutdowns"],
    }
    assert bench.merged(fresh, tmp_path / "none.json") == fresh


def test_controls_are_measured_against_their_own_one_client_and_leave_targets_alone(bench):
    rows = [
        row("text", 1, 100.0, 10.0),
        row("fused", 1, 80.0, 12.0),
        row("fused", 32, 240.0, 100.0),
        row(bench.ONE_THREAD, 1, 40.0, 25.0),
        row(bench.ONE_THREAD, 32, 60.0, 500.0),
        row(bench.ONNX, 1, 100.0, 9.0),
    ]
    bench.add_ratios(rows)
    assert rows[4]["throughput_vs_c1"] == 1.5 and rows[5]["p50_vs_baseline"] == 0.9
    values = bench.target_values(rows, {}, None)
    assert values["fused_throughput_c32_vs_c1"] == 3.0  # the default server's, not a control's
