"""The load ramp of bench/serve_ray.py, as numbers and a picture: no Ray, no server.

A ramp is a list of `Phase`s (low, high, low load) run back to back. While it runs, the bench
collects what each request did (`Request`: when it finished, its latency, its error) and how many
replicas Ray Serve had (`Sample`: when, replicas by state). From those alone this module builds

- `series`: one row per ``step`` seconds: running replicas, throughput, p99, errors;
- `phase_summary`: the same per phase, with the replicas at its start, peak and end;
- `checks`: did the replicas rise under the high load, fall back afterwards, with no errors;
- `plot`: three stacked panels sharing the time axis (replicas, req/s, p99), phases shaded.

Times are seconds since the ramp started.
"""

from __future__ import annotations

import io
import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import percentile

RUNNING = "RUNNING"
STARTING = ("STARTING", "PENDING_MIGRATION")  # states of a replica on its way up


@dataclass(frozen=True)
class Phase:
    """``clients`` closed-loop clients for ``seconds``."""

    name: str
    clients: int
    seconds: float


class Request(NamedTuple):
    end_s: float  # when the answer (or the failure) came
    latency_ms: float
    error: str | None  # None: answered 200


class Sample(NamedTuple):
    t_s: float
    states: dict[str, int]  # replicas by state, as serve.status() reports them

    @property
    def running(self) -> int:
        return self.states.get(RUNNING, 0)

    @property
    def starting(self) -> int:
        return sum(self.states.get(s, 0) for s in STARTING)


def bounds(phases: list[Phase]) -> list[tuple[Phase, float, float]]:
    """Each phase with its start and end (seconds since the ramp started)."""
    out, start = [], 0.0
    for phase in phases:
        out.append((phase, start, start + phase.seconds))
        start += phase.seconds
    return out


def _phase_at(phases: list[Phase], t: float) -> str:
    for phase, start, end in bounds(phases):
        if start <= t < end:
            return phase.name
    return phases[-1].name  # answers that came after the last phase's end


def _last_sample(samples: list[Sample], t: float) -> Sample | None:
    """The last sample taken at or before ``t``."""
    before = [s for s in samples if s.t_s <= t]
    return before[-1] if before else None


def _window(requests: list[Request], start: float, end: float) -> dict[str, Any]:
    ok = [r.latency_ms for r in requests if start <= r.end_s < end and r.error is None]
    errors = sum(1 for r in requests if start <= r.end_s < end and r.error is not None)
    seconds = end - start
    return {
        "requests_ok": len(ok),
        "requests_per_s": round(len(ok) / seconds, 2) if seconds > 0 else None,
        "p50_ms": _rounded(percentile(ok, 50)),
        "p99_ms": _rounded(percentile(ok, 99)),
        "errors": errors,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def series(
    requests: list[Request], samples: list[Sample], phases: list[Phase], step: float
) -> list[dict[str, Any]]:
    """One row per ``step`` seconds of the ramp: its phase, the replicas (running, and starting)
    of the window's last sample, and the throughput, p99 and errors of the requests that ended in it."""
    total = sum(p.seconds for p in phases)
    rows = []
    for i in range(math.ceil(total / step - 1e-9)):
        start, end = i * step, min((i + 1) * step, total)
        during = [s for s in samples if s.t_s < end]  # the state as the window ends
        sample = during[-1] if during else None
        rows.append(
            {
                "t_s": round(start, 3),
                "phase": _phase_at(phases, start),
                "replicas": sample.running if sample else None,
                "starting": sample.starting if sample else None,
                **_window(requests, start, end),
            }
        )
    return rows


def phase_summary(
    requests: list[Request], samples: list[Sample], phases: list[Phase]
) -> list[dict[str, Any]]:
    """Per phase: clients, throughput, p50/p99, errors, and the running replicas at its start,
    at its peak (and when, in seconds into the phase) and at its end."""
    out = []
    for n, (phase, start, end) in enumerate(bounds(phases)):
        last = n == len(phases) - 1
        inside = [s for s in samples if start <= s.t_s < end or (last and s.t_s >= end)]
        first = _last_sample(samples, start) or (inside[0] if inside else None)
        final = inside[-1] if inside else _last_sample(samples, end)
        peak = max(inside, key=lambda s: s.running, default=None)
        window_end = math.inf if last else end  # the last phase keeps its stragglers
        stats = _window(requests, start, window_end)
        if last and stats["requests_ok"]:
            stats["requests_per_s"] = round(stats["requests_ok"] / phase.seconds, 2)
        out.append(
            {
                "phase": phase.name,
                "clients": phase.clients,
                "start_s": start,
                "seconds": phase.seconds,
                **stats,
                "replicas_at_start": first.running if first else None,
                "replicas_peak": peak.running if peak else None,
                "replicas_peak_after_s": round(peak.t_s - start, 1) if peak else None,
                "replicas_at_end": final.running if final else None,
            }
        )
    return out


def replica_changes(samples: list[Sample]) -> list[dict[str, Any]]:
    """Each change of the running replica count: when, from, to."""
    changes = []
    for before, after in itertools.pairwise(samples):
        if after.running != before.running:
            changes.append(
                {"t_s": round(after.t_s, 1), "from": before.running, "to": after.running}
            )
    return changes


CHECKS = {
    "replicas_rise": "replicas rise under the high load",
    "replicas_fall_back": "replicas fall back afterwards",
    "no_errors": "no request errors",
}


def checks(summary: list[dict[str, Any]], high: str) -> dict[str, bool]:
    """The three things a ramp must show, from `phase_summary` (``high``: the high phase).

    - ``replicas_rise``: the high phase peaks above the replicas it started with;
    - ``replicas_fall_back``: the last phase ends at (or below) what the high phase started with;
    - ``no_errors``: not one request failed, in any phase.
    """
    peak_phase = next(p for p in summary if p["phase"] == high)
    start, peak = peak_phase["replicas_at_start"], peak_phase["replicas_peak"]
    end = summary[-1]["replicas_at_end"]
    known = start is not None and peak is not None
    return {
        "replicas_rise": known and peak > start,
        "replicas_fall_back": known and end is not None and end <= start and end < peak,
        "no_errors": sum(p["errors"] for p in summary) == 0,
    }


def verdict(summary: list[dict[str, Any]], samples: list[Sample], high: str) -> dict[str, Any]:
    """`checks`, whether all passed, the replica changes, and the one line a reader looks for:
    ``PASS: replicas rise under the high load yes; ...`` (or ``FAIL: ...``, naming each NO)."""
    passed = checks(summary, high)
    line = "; ".join(f"{CHECKS[k]} {'yes' if ok else 'NO'}" for k, ok in passed.items())
    return {
        "checks": passed,
        "passed": all(passed.values()),
        "result": f"{'PASS' if all(passed.values()) else 'FAIL'}: {line}",
        "replica_changes": replica_changes(samples),
    }


# ----------------------------------------------------------------- the picture

SHADES = ("#dbe9f6", "#f9d9c4")  # low, high: phases with fewer or more clients than the most


def plot(rows: list[dict[str, Any]], phases: list[Phase], title: str) -> bytes:
    """A PNG: running replicas, requests/s and p99 latency over time, one panel each, with the
    phases shaded (the highest-client phase in orange)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 1, sharex=True, figsize=(9, 7.5), constrained_layout=True)
    t = [r["t_s"] for r in rows]
    step = (t[1] - t[0]) if len(t) > 1 else 1.0
    edges = [*t, t[-1] + step]  # each row's value holds over its window
    panels = (
        ("replicas", "running replicas", "tab:blue"),
        ("requests_per_s", "requests/s", "tab:green"),
        ("p99_ms", "p99 latency (ms)", "tab:red"),
    )
    most = max(p.clients for p in phases)
    for ax, (key, label, colour) in zip(axes, panels, strict=True):
        for phase, start, end in bounds(phases):
            ax.axvspan(start, end, color=SHADES[phase.clients == most], alpha=0.8, lw=0)
        values = [math.nan if r[key] is None else r[key] for r in rows]
        if key == "replicas":
            up = [
                math.nan if r["starting"] is None else r["replicas"] + r["starting"] for r in rows
            ]
            for ys, style, name in ((values, "-", "running"), (up, "--", "running + starting")):
                ax.step(edges, [*ys, ys[-1]], where="post", color=colour, ls=style, label=name)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.legend(loc="upper right", fontsize=8)
        else:
            ax.plot([x + step / 2 for x in t], values, color=colour, lw=1.5, marker=".")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for phase, start, end in bounds(phases):
        axes[0].annotate(
            f"{phase.name}: {phase.clients} client{'s' if phase.clients != 1 else ''}",
            ((start + end) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    axes[-1].set_xlabel("seconds since the ramp started")
    axes[-1].set_xlim(0, sum(p.seconds for p in phases))
    figure.suptitle(title, fontsize=10)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=100)
    plt.close(figure)
    return out.getvalue()
