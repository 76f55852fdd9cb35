"""The linker at scale: build time, memory and texts/s over a synthetic KG of N entities.

Run through bench/linking.py (``--scale-entities 1000000``; ``--only-scale`` skips the quality
section and merges the figures into an existing ``--json`` file). Each KG is measured in fresh
processes (bench/kg_load.py's children), so peak memory is the linker's own:

- ``build``: open the compiled KG, build the default `kg_linker` with no index (n-gram
  indexes, alias tables, disambiguation statistics), write its index (nlp/linker_index.py),
  then link the 1,200 symptom2disease texts (fastest and median of 2 passes, after a
  warm-up);
- ``load``: open the KG and build the linker from the saved index, then link the texts again.

The baseline is the shared symptom2disease KG (about 200 entities), measured the same way in
the same run; ratios are N's figure over the baseline's. The synthetic KG comes from
bench/synthetic_kg.py: labels, aliases, descriptions and edges in the shape of the shared KG.
"""

from __future__ import annotations

import csv
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from kg_load import high_water_mb, run_child, run_child_main  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "symptom2disease"
PASSES = 2  # a pass over 1M entities' candidates is slow; the machine is shared


def _rss_mb() -> float:
    """This process's own peak RSS so far (VmHWM: ru_maxrss would carry the parent's)."""
    return high_water_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _texts() -> list[str]:
    with (DATA / "Symptom2Disease.csv").open(encoding="utf-8", newline="") as f:
        return [r["text"] for r in csv.DictReader(f)]


def _speed(nlp: Any, texts: list[str]) -> tuple[float, float]:
    """texts/s of the fastest pass and of the median pass (the machine is shared: other work
    only ever slows a pass)."""
    list(nlp.pipe(texts[:50]))  # warm-up
    passes = []
    for _ in range(PASSES):
        start = time.perf_counter()
        for _doc in nlp.pipe(texts):
            pass
        passes.append(time.perf_counter() - start)
    return len(texts) / min(passes), len(texts) / statistics.median(passes)


def op_compile(spec: dict[str, Any]) -> dict[str, Any]:
    """Write (when ``entities`` is set) and compile a KG into ``out``."""
    from synthetic_kg import write_synthetic_kg

    import kg

    source = Path(spec["source"])
    start = time.perf_counter()
    if spec.get("entities"):
        write_synthetic_kg(source, int(spec["entities"]))
    written = time.perf_counter() - start
    start = time.perf_counter()
    graph = kg.load(source)
    graph.save(spec["out"])
    return {
        "entities": graph.num_entities,
        "aliases": len(graph.aliases),
        "triples": graph.num_triples,
        "write_s": written,
        "compile_s": time.perf_counter() - start,
    }


def op_link(spec: dict[str, Any]) -> dict[str, Any]:
    """Build the linker (from the index in ``index`` when ``use_index``), link the texts."""
    import spacy

    import kg
    from nlp.keys import Lemmatizer
    from nlp.linker import from_kg
    from nlp.linker_index import save_index

    pipeline = spacy.blank("en")  # loading spaCy's language data: not the linker's cost
    Lemmatizer("en").vocabulary()
    start = time.perf_counter()
    graph = kg.open(spec["kg"])
    graph.fingerprint  # noqa: B018 (computed once either way; counted with the KG)
    opened, rss_kg = time.perf_counter() - start, _rss_mb()
    start = time.perf_counter()
    index = {"index": spec["index"]} if spec["use_index"] else {}
    nlp = from_kg(graph, pipeline, **index)
    built, rss_linker = time.perf_counter() - start, _rss_mb()
    out: dict[str, Any] = {"kg_open_s": opened, "build_s": built}
    if spec["use_index"]:
        out["index_loaded"] = nlp.get_pipe("kg_linker").index_loaded
    else:
        start = time.perf_counter()
        save_index(nlp, spec["index"])
        out["index_save_s"] = time.perf_counter() - start
        out["index_mb"] = sum(f.stat().st_size for f in Path(spec["index"]).iterdir()) / 2**20
    out["texts_per_s"], out["texts_per_s_median"] = _speed(nlp, _texts())
    out["kg_rss_mb"] = rss_kg
    out["linker_rss_mb"] = rss_linker - rss_kg  # what the build added to the peak
    out["process_hwm_mb"] = high_water_mb()
    return out


OPS = {"compile": op_compile, "link": op_link}


def measure_scale(n_entities: int, workdir: Path) -> dict[str, Any]:
    """The figures of the shared KG (baseline) and of a synthetic KG of ``n_entities``."""
    kgs = {
        "baseline": {"source": str(DATA / "kg.ttl")},
        "scaled": {"source": str(workdir / "synthetic.nt"), "entities": n_entities},
    }
    results: dict[str, Any] = {}
    for name, spec in kgs.items():
        folder = workdir / name
        compiled = run_child("compile", __file__, **spec, out=str(folder / "kg"))
        index = str(folder / "kg.linker")
        built = run_child("link", __file__, kg=str(folder / "kg"), index=index, use_index=False)
        loaded = run_child("link", __file__, kg=str(folder / "kg"), index=index, use_index=True)
        results[name] = {
            "kg": compiled,
            "build": built,
            "load_from_index": loaded,
        }
        print(f"measured the linker at {compiled['entities']:,} entities", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    results["ratios"] = {
        f"{step}.{key}": _ratio(results["scaled"][step][key], results["baseline"][step][key])
        for step, key in (
            ("build", "build_s"),
            ("build", "linker_rss_mb"),
            ("build", "texts_per_s"),
            ("load_from_index", "build_s"),
            ("load_from_index", "texts_per_s"),
        )
    }
    return results


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def print_scale(results: dict[str, Any]) -> None:
    base, big = results["baseline"], results["scaled"]
    rows = [
        ("entities", "kg", "entities", "{:,.0f}"),
        ("aliases", "kg", "aliases", "{:,.0f}"),
        ("KG open (compiled folder), s", "build", "kg_open_s", "{:.2f}"),
        ("linker build, no index, s", "build", "build_s", "{:.2f}"),
        ("linker memory (RSS added by the build), MB", "build", "linker_rss_mb", "{:,.0f}"),
        ("process peak RSS, MB", "build", "process_hwm_mb", "{:,.0f}"),
        ("index write, s", "build", "index_save_s", "{:.2f}"),
        ("index on disk, MB", "build", "index_mb", "{:.1f}"),
        ("texts/s (fastest of 2 passes)", "build", "texts_per_s", "{:,.0f}"),
        ("texts/s (median of 2 passes)", "build", "texts_per_s_median", "{:,.0f}"),
        ("linker build from the index, s", "load_from_index", "build_s", "{:.2f}"),
        ("texts/s, linker from the index", "load_from_index", "texts_per_s", "{:,.0f}"),
        ("texts/s, from the index (median)", "load_from_index", "texts_per_s_median", "{:,.0f}"),
    ]
    print(f"\n{'linker at scale':46} {'baseline':>12} {'synthetic':>12} {'ratio':>8}")
    for label, step, key, fmt in rows:
        a, b = base[step].get(key), big[step].get(key)
        ratio = f"{b / a:8.2f}" if a and b is not None else f"{'':8}"
        cells = [fmt.format(v) if v is not None else "-" for v in (a, b)]
        print(f"{label:46} {cells[0]:>12} {cells[1]:>12} {ratio}")


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    sys.path.insert(0, str(REPO))
    run_child_main(sys.argv[2], OPS)
