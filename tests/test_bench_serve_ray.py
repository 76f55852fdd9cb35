"""The load ramp of bench/serve_ray.py from a made-up run (no Ray, no server): the per-phase
summary, the PASS/FAIL checks, the time series and the PNG."""

from __future__ import annotations

import importlib.util
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ramp() -> Iterator[ModuleType]:
    yield load("ramp")
    sys.modules.pop("ramp", None)


def made_up_run(ramp, replicas_after: int = 1, errors: int = 0, peak: int = 3):
    """10 s low (1 replica), 20 s high (``peak`` replicas from t=16), 20 s low (back to
    ``replicas_after`` from t=40). One answer a second when low (100 ms), ten when high (300
    ms, two of them 900 ms); ``errors`` failures at t=20.5."""
    phases = [ramp.Phase("low", 1, 10), ramp.Phase("high", 16, 20), ramp.Phase("low again", 1, 20)]
    requests = [ramp.Request(t + 0.5, 100.0, None) for t in range(10)]
    requests += [ramp.Request(10 + i / 10, 300.0, None) for i in range(200)]
    for slow in (50, 60):
        requests[slow] = ramp.Request(requests[slow].end_s, 900.0, None)
    requests += [ramp.Request(20.5, 5.0, "503") for _ in range(errors)]
    requests += [ramp.Request(t + 0.5, 100.0, None) for t in range(30, 50)]

    def running(t: int) -> int:
        return peak if 16 <= t < 40 else (replicas_after if t >= 40 else 1)

    samples = [ramp.Sample(float(t), {"RUNNING": running(t)}) for t in range(50)]
    samples[15] = ramp.Sample(15.0, {"RUNNING": 1, "STARTING": 2})
    return phases, requests, samples


def test_ramp_summary_gives_each_phase_its_throughput_p99_and_replicas(ramp):
    phases, requests, samples = made_up_run(ramp)
    low, high, after = ramp.phase_summary(requests, samples, phases)
    assert (low["phase"], low["clients"], low["requests_per_s"], low["p99_ms"]) == (
        "low",
        1,
        1.0,
        100.0,
    )
    assert high["requests_per_s"] == 10.0 and high["errors"] == 0
    assert 300.0 < high["p99_ms"] < 900.0 and high["p50_ms"] == 300.0
    assert (high["replicas_at_start"], high["replicas_peak"], high["replicas_at_end"]) == (1, 3, 3)
    assert high["replicas_peak_after_s"] == 6.0  # first seen at t=16, 6 s into the phase
    assert (after["replicas_at_start"], after["replicas_at_end"]) == (3, 1)
    assert after["requests_per_s"] == 1.0
    assert ramp.replica_changes(samples) == [
        {"t_s": 16.0, "from": 1, "to": 3},
        {"t_s": 40.0, "from": 3, "to": 1},
    ]


def test_ramp_passes_when_replicas_rise_fall_back_and_nothing_failed(ramp):
    phases, requests, samples = made_up_run(ramp)
    verdict = ramp.verdict(ramp.phase_summary(requests, samples, phases), samples, high="high")
    assert verdict["passed"] is True
    assert verdict["result"].startswith("PASS: replicas rise under the high load yes")


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"peak": 1}, ["replicas_rise", "replicas_fall_back"]),  # never up, so never back
        ({"replicas_after": 3}, ["replicas_fall_back"]),  # stayed up after the load went
        ({"replicas_after": 2}, ["replicas_fall_back"]),  # only part of the way back
        ({"errors": 2}, ["no_errors"]),
    ],
)
def test_ramp_fails_naming_the_check_that_did_not_hold(ramp, change, failed):
    phases, requests, samples = made_up_run(ramp, **change)
    verdict = ramp.verdict(ramp.phase_summary(requests, samples, phases), samples, high="high")
    assert verdict["passed"] is False
    assert [k for k, ok in verdict["checks"].items() if not ok] == failed
    assert verdict["result"].startswith("FAIL:")
    assert all(f"{ramp.CHECKS[k]} NO" in verdict["result"] for k in failed)


def test_ramp_without_replica_samples_fails_rather_than_passes(ramp):
    phases, requests, _ = made_up_run(ramp)
    verdict = ramp.verdict(ramp.phase_summary(requests, [], phases), [], high="high")
    assert verdict["checks"] == {
        "replicas_rise": False,
        "replicas_fall_back": False,
        "no_errors": True,
    }


def test_ramp_series_has_one_row_per_step_with_replicas_and_errors(ramp):
    phases, requests, samples = made_up_run(ramp, errors=3)
    rows = ramp.series(requests, samples, phases, step=2.0)
    assert len(rows) == 25 and rows[0]["t_s"] == 0.0 and rows[-1]["t_s"] == 48.0
    by_t = {r["t_s"]: r for r in rows}
    assert by_t[0.0]["phase"] == "low" and by_t[10.0]["phase"] == "high"
    assert by_t[14.0]["replicas"] == 1 and by_t[14.0]["starting"] == 2  # the sample at t=15
    assert by_t[16.0]["replicas"] == 3 and by_t[16.0]["starting"] == 0
    assert by_t[20.0]["errors"] == 3 and by_t[20.0]["requests_per_s"] == 10.0
    assert by_t[38.0]["replicas"] == 3 and by_t[40.0]["replicas"] == 1
    assert by_t[4.0]["p99_ms"] == 100.0


def test_ramp_plot_is_a_png_of_three_panels(ramp):
    import matplotlib.image

    phases, requests, samples = made_up_run(ramp)
    rows = ramp.series(requests, samples, phases, step=2.0)
    png = ramp.plot(rows, phases, "made up")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    height, width, _ = matplotlib.image.imread(io.BytesIO(png)).shape
    assert (width, height) == (900, 750)


def test_bench_serve_ray_ramp_starts_the_server_with_its_autoscaling_options():
    sys.path.insert(0, str(BENCH))
    try:
        bench = load("serve_ray")
        args = bench.parse_args(
            ["--ramp", "--upscale-delay", "2", "--target-ongoing-requests", "3"]
        )
        options = bench.autoscaling_options(args)
    finally:
        sys.path.remove(str(BENCH))
        for name in ("serve_ray", "serve", "ramp", "relpaths"):
            sys.modules.pop(name, None)
    assert args.replica_cpus == 0.5  # three replicas fit on a 2-CPU Ray instance
    assert options == [
        "--autoscale-min",
        "1",
        "--autoscale-max",
        "3",
        "--upscale-delay",
        "2",
        "--downscale-delay",
        "15",
        "--target-ongoing-requests",
        "3",
    ]
    assert [p.clients for p in bench.ramp_phases(args)] == [1, 16, 1]
