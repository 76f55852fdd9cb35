"""End to end on the tiny config: train, bundle, reload, resume (integration tier)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fusion.bundle import BundleError, load_bundle
from fusion.config import ConfigError, load_config
from fusion.evaluate import predict_logits
from fusion.train import main, run
from nlp.texts import DataError

pytestmark = pytest.mark.integration
TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def overrides(tiny_bert: Path, out: Path, *more: str) -> list[str]:
    return [f"encoder.path={tiny_bert}", f"output={out}", "train.threads=1", *more]


@pytest.fixture(scope="module")
def trained(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("run") / "tiny"
    return main(TINY, overrides(tiny_bert, out), progress=False)


def test_train_writes_a_bundle_metrics_and_a_checkpoint(trained) -> None:  # type: ignore[no-untyped-def]
    assert sorted(p.name for p in trained.bundle.iterdir()) == [
        "adapter",
        "bundle.json",
        "kg",
        "model.safetensors",
        "node_features.safetensors",
    ]
    lines = [json.loads(x) for x in (trained.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert set(trained.metrics) == {"val", "val:seen", "test:unseen"}  # tiny: no held-out entity
    meta = json.loads((trained.bundle / "bundle.json").read_text())
    assert meta["labels"] == ["flu", "viral"] and meta["config"]["model"]["mode"] == "fused"
    assert not list(trained.bundle.rglob("*.pkl")) and not list(trained.bundle.rglob("*.bin"))


def test_bundle_reload_gives_identical_logits(trained) -> None:  # type: ignore[no-untyped-def]
    model, resources, _ = load_bundle(trained.bundle)
    again, resources2, _ = load_bundle(trained.bundle)
    texts = ["a bad case of influenza", "covid-19 and a cough", "nothing here"]
    first = predict_logits(model, resources, resources.prepare(texts))
    second = predict_logits(again, resources2, resources2.prepare(texts))
    assert np.array_equal(first, second)


def test_train_resumes_an_interrupted_run_exactly(tiny_bert: Path, tmp_path: Path) -> None:
    def interrupt(epoch: int, record: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    config = load_config(TINY, overrides(tiny_bert, out))
    with pytest.raises(KeyboardInterrupt):
        run(config, progress=False, on_epoch_end=interrupt)
    assert not (out / "bundle").exists()
    resumed = run(config, progress=False)
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2] and resumed.epochs_run == 2
    fresh = run(load_config(TINY, overrides(tiny_bert, tmp_path / "fresh")), progress=False)
    texts = ["a bad case of influenza", "covid-19 and a cough"]
    a, ra, _ = load_bundle(resumed.bundle)
    b, rb, _ = load_bundle(fresh.bundle)
    assert np.allclose(
        predict_logits(a, ra, ra.prepare(texts)),
        predict_logits(b, rb, rb.prepare(texts)),
        atol=1e-5,
    )


def test_train_refuses_to_resume_with_other_settings(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    main(TINY, overrides(tiny_bert, out, "train.epochs=1"), progress=False)
    with pytest.raises(ConfigError, match="holds a run with other settings or data"):
        main(TINY, overrides(tiny_bert, out, "model.hidden=8"), progress=False)


@pytest.mark.parametrize("mode", ["text", "graph", "counter"])
def test_train_every_mode(tiny_bert: Path, tmp_path: Path, mode: str) -> None:
    result = main(
        TINY,
        overrides(tiny_bert, tmp_path / mode, f"model.mode={mode}", "train.epochs=1"),
        progress=False,
    )
    model, _, meta = load_bundle(result.bundle)
    assert meta["config"]["model"]["mode"] == mode
    assert (model.text_encoder is None) == (mode == "graph")


def test_fused_model_reads_relation_counts_and_explains(tiny_bert: Path, tmp_path: Path) -> None:
    from fusion.predict import Predictor

    more = ("model.counts_head=concat", "subgraph.counts=relations", "train.epochs=1")
    result = main(TINY, overrides(tiny_bert, tmp_path / "counts", *more), progress=False)
    predictor = Predictor.from_dir(result.bundle)
    graph = predictor.resources.graph
    counter = predictor.resources.counter
    assert counter is not None and counter.dims == 2 * 2 + graph.num_relations * 2
    head = predictor.model.text_head[1]
    assert head.in_features == predictor.model.text_dim + counter.dims  # the head reads counts
    (p,) = predictor.predict(["a bad case of influenza"], explain_paths=True)
    assert p.entities and p.paths


def test_without_a_label_map_paths_lead_to_the_nodes_the_model_attended(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from fusion.predict import Predictor

    more = ("kg.label_map=", "train.epochs=1")
    result = main(TINY, overrides(tiny_bert, tmp_path / "no-map", *more), progress=False)
    predictor = Predictor.from_dir(result.bundle)
    assert not predictor.resources.label_nodes
    (p,) = predictor.predict(["a bad case of influenza"], explain_paths=True)
    graph = predictor.resources.graph
    triples = {
        (graph.iri(t.subject), graph.relation_iri(t.relation), graph.iri(t.object))
        for t in graph.triples()
    }
    assert p.paths
    for path in p.paths:
        for hop in path.hops:
            spo = (hop.subject.iri, hop.predicate.iri, hop.object.iri)
            assert spo in triples


def test_bundle_errors_name_the_missing_file(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "bundle"
    shutil.copytree(trained.bundle, copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(BundleError, match=r"model\.safetensors is missing"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="no model bundle"):
        load_bundle(tmp_path / "nowhere")


def test_config_errors_are_reported_together(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kg: {files: [a.ttl]}\ndata: {train: x.csv}\ntrain: {epochs: many, optimiser: sgd}\nmodel: {mode: huge}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad, ["encoder.lora_dropout=2"])
    message = str(info.value)
    assert "4 problem(s)" in message
    for piece in (
        "train.epochs: must be an integer of 1 or more (got 'many')",
        "train.optimiser: unknown key",
        "model.mode: must be one of",
        "encoder.lora_dropout: must be a number in [0, 1) (got 2)",
    ):
        assert piece in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["kg.files=[]"], "set exactly one of 'kg.files'"),
        (["kg.endpoint=http://localhost:7878/query"], "found kg.files, kg.endpoint"),
        (["kg.files=[]", "kg.endpoint=localhost:7878"], "'kg.endpoint' must be an http(s) URL"),
    ],
)
def test_config_needs_exactly_one_kg_source(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(TINY, overrides)


def test_training_over_an_unreachable_endpoint_names_it_and_writes_nothing(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from kg.errors import KGStoreError

    url = "http://127.0.0.1:9/query"  # the discard port: nothing answers there
    overrides = [f"encoder.path={tiny_bert}", f"output={tmp_path / 'run'}", "kg.files=[]"]
    with pytest.raises(KGStoreError, match=re.escape(url)):
        main(TINY, [*overrides, f"kg.endpoint={url}"], progress=False)
    assert not (tmp_path / "run" / "bundle").exists()


def test_missing_encoder_path_says_nothing_is_fetched(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="never downloads"):
        main(
            TINY,
            [f"encoder.path={tmp_path / 'no-model'}", f"output={tmp_path / 'o'}"],
            progress=False,
        )


def test_compare_trains_every_variant_and_measures_faithfulness(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from fusion.compare import compare

    config = load_config(TINY, overrides(tiny_bert, tmp_path / "cmp", "train.epochs=1"))
    report = compare(config, seeds=2, faithfulness_texts=5, progress=False)
    probes = {  # (variant, seed) -> the training record's probe (None: a random text head)
        (r["variant"], r["seed"]): json.loads((Path(r["bundle"]) / "bundle.json").read_text())[
            "training"
        ]["probe"]
        for r in report["runs"]
        if r["bundle"]
    }
    # the probe ablation flips, per seed, what train.probe_init: auto chose for fused
    probe_rows = ["fused-no-probe" if probes["fused", s] else "fused-probe" for s in (0, 1)]
    for seed, row in enumerate(probe_rows):
        assert (probes[row, seed] is None) != (probes["fused", seed] is None)
        assert probes["text", seed] is not None  # auto: a text-only model starts from it
    assert [r["variant"] for r in report["runs"]] == [
        "reference",
        "reference",
        "reference-counts",
        "reference-counts",
        "text",
        "text",
        "fused",
        "fused",
        "graph",
        "graph",
        "counter",
        "fused-shuffled",
        "fused-no-kg",
        "fused-mention-mask-0.5",
        "fused-swap-0.5",
        "fused-fgm-1",
        *probe_rows,
        "fused-paths",
        "fused-paths",
        "graph-paths",
        "graph-paths",
        "fused-no-gnn",
        "fused-no-counts",
    ]
    assert report["summary"]["text"]["seeds"] == [0, 1]
    assert set(report["summary"]["fused"]) >= {
        "val/accuracy",
        "test:unseen/macro_f1",
        "test:unseen/ece",
        "seconds_per_epoch",
    }
    assert set(report["summary"]["reference"]) >= {"test:unseen/accuracy", "test:unseen/ece"}
    assert set(report["summary"]["reference-counts"]) >= {"test:unseen/accuracy"}
    faithful = report["faithfulness"]
    assert faithful["test"] == "unseen" and faithful["texts"] >= 1
    assert {"comp", "comp_random", "suff", "suff_random", "ratio"} <= set(faithful)
    again = compare(config, seeds=2, faithfulness_texts=0, progress=False)  # runs are reused
    assert again["runs"][0]["metrics"] == report["runs"][0]["metrics"]
    # a row of seed N is what `kgfuse train CONFIG train.seed=N` gives (its own val split)
    alone = main(
        TINY,
        overrides(
            tiny_bert, tmp_path / "alone", "train.epochs=1", "train.seed=1", "model.mode=text"
        ),
        progress=False,
    )
    row = report["runs"][5]
    assert row["variant"] == "text" and row["seed"] == 1

    def epochs(run_dir: Path) -> list[tuple[float, float]]:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return [(r["train_loss"], r["val_loss"]) for r in map(json.loads, lines)]

    # equal up to float rounding: the probe's frozen vectors were embedded in other batches
    # (compare memoises them across runs), and a batch's padding changes the sums' order
    assert np.allclose(epochs(Path(row["bundle"]).parent), epochs(alone.run_dir), rtol=1e-5)
    ours = row["metrics"]["test:unseen"]
    for key in ("accuracy", "macro_f1", "ece", "nll"):
        assert ours[key] == pytest.approx(alone.metrics["test:unseen"][key], rel=1e-5)


def test_the_counts_only_reference_reads_no_text(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the bar of a model that reads no text (graph): the reference's regression, counts only
    from fusion.compare import evaluate_references
    from fusion.setup import Workspace, plan_run

    config = load_config(TINY, overrides(tiny_bert, tmp_path / "ref", "train.epochs=1"))
    workspace = Workspace.open(config, None)
    plan = plan_run(config, workspace)
    with_text, _ = evaluate_references(plan, workspace, ("reference",))["reference"]

    def no_text(texts: list[str]) -> None:
        raise AssertionError(f"the counts-only reference embedded {len(texts)} texts")

    monkeypatch.setattr(workspace, "embed", no_text)
    counts_only, _ = evaluate_references(plan, workspace, ("reference-counts",))["reference-counts"]
    assert set(counts_only) == set(with_text) and "test:unseen" in counts_only


def test_compare_with_counts_writes_bundles_that_reload(tiny_bert: Path, tmp_path: Path) -> None:
    """With ``model.counts`` only the fused and counter variants read counts (fused-no-counts
    being the fused model without them); bundles reload."""
    from fusion.compare import REFERENCES, compare

    more = ("train.epochs=1", "model.counts=true", "subgraph.counts=relations")
    config = load_config(TINY, overrides(tiny_bert, tmp_path / "cmp", *more))
    report = compare(config, seeds=1, faithfulness_texts=0, progress=False)
    for entry in report["runs"]:
        if entry["variant"] in REFERENCES:  # a regression: no bundle
            continue
        model, _, _ = load_bundle(entry["bundle"])
        variant = entry["variant"]
        reads = variant == "counter" or (
            variant.startswith("fused") and variant != "fused-no-counts"
        )
        assert model.reads_counts == reads, variant


def test_new_triples_change_predictions_without_retraining(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import kg
    from fusion.predict import Predictor

    predictor = Predictor.from_dir(trained.bundle)
    text = "my aunt caught the avian strain"
    (before,) = predictor.predict([text], explain_paths=True)
    assert before.entities == [] and before.graph_weight == 0.0
    facts = tmp_path / "new.ttl"
    facts.write_text(
        "@prefix ex: <http://example.org/tiny/> .\n@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        'ex:h5n1 rdfs:label "avian strain" ; ex:causedBy ex:influenza_virus ; ex:hasSymptom ex:fever .\n'
    )
    updated = predictor.with_graph(kg.extend(predictor.resources.graph, facts))
    (after,) = updated.predict([text], explain_paths=True)
    assert [e.iri for e in after.entities] == ["http://example.org/tiny/h5n1"]
    assert after.graph_weight is not None and after.graph_weight > 0.0
    assert after.probabilities != before.probabilities
    hops = [hop for path in after.paths or [] for hop in path.hops]
    assert all(kg_has(updated, h) for h in hops) and hops


def kg_has(predictor, hop) -> bool:  # type: ignore[no-untyped-def]
    graph = predictor.resources.graph
    s, o = graph.entity_id(hop.subject.iri), graph.entity_id(hop.object.iri)
    return graph.has_triple(s, graph.relation_id(hop.predicate.iri), o)


def test_export_merges_lora_with_the_same_predictions_and_int8_runs(
    trained, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from fusion.export import export_bundle

    texts = ["a bad case of influenza", "covid-19 and a cough"]
    source, res, _ = load_bundle(trained.bundle)
    merged_dir = export_bundle(trained.bundle, tmp_path / "merged")
    assert (merged_dir / "encoder" / "config.json").is_file() and not (
        merged_dir / "adapter"
    ).exists()
    merged, res2, meta = load_bundle(merged_dir)
    assert meta["encoder_storage"] == "encoder"
    expected = predict_logits(source, res, res.prepare(texts))
    assert np.allclose(predict_logits(merged, res2, res2.prepare(texts)), expected, atol=1e-4)
    int8, res3, meta3 = load_bundle(export_bundle(trained.bundle, tmp_path / "int8", int8=True))
    assert meta3["quantize"] == "int8"
    assert predict_logits(int8, res3, res3.prepare(texts)).shape == expected.shape
    with pytest.raises(BundleError, match="other than the source"):
        export_bundle(trained.bundle, trained.bundle)


def test_cli_model_commands_answer_and_refuse_bad_input(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from .conftest import run_cli

    bundle = str(trained.bundle)
    evaluated = run_cli("evaluate", bundle, "tests/fixtures/tiny_test.csv")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "accuracy" in evaluated.stdout and "confusion matrix" in evaluated.stdout
    explained = run_cli("explain", bundle, "covid-19 and a cough")
    assert explained.returncode == 0, explained.stderr
    assert "linked: 'covid-19' -> COVID-19" in explained.stdout
    out = tmp_path / "pred.jsonl"
    predicted = run_cli("predict", bundle, "-i", "tests/fixtures/tiny_test.csv", "-o", str(out))
    assert predicted.returncode == 0 and len(out.read_text().splitlines()) == 3
    zebra = tmp_path / "zebra.csv"
    zebra.write_text("text,label\na striped horse,zebra\n")
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("kg: {files: [x.ttl]}\ndata: {train: y.csv}\nmodel: {mode: huge}\n")
    for args, message in [
        (
            ("evaluate", str(tmp_path / "nowhere"), "tests/fixtures/tiny_test.csv"),
            "no model bundle",
        ),
        (("predict", bundle, "-i", str(tmp_path / "none.csv")), "file not found"),
        (("train", str(bad_config)), "model.mode: must be one of"),
        (("evaluate", bundle, str(zebra)), "has label(s) ['zebra'] the model does not know"),
    ]:
        result = run_cli(*args)
        assert result.returncode == 1, args
        assert message in result.stderr and "Traceback" not in result.stderr


def test_per_label_counts_head_trains_reloads_and_explains(tiny_bert: Path, tmp_path: Path) -> None:
    from fusion.model import PerLabelCounts
    from fusion.predict import Predictor

    more = ("model.counts_head=per_label", "train.epochs=1")
    result = main(TINY, overrides(tiny_bert, tmp_path / "counts", *more), progress=False)
    predictor = Predictor.from_dir(result.bundle)
    assert isinstance(predictor.model.counts_head, PerLabelCounts)
    assert predictor.model.text_head[1].in_features == predictor.model.text_dim  # text alone
    (p,) = predictor.predict(["a bad case of influenza"], explain_paths=True)
    assert p.entities and p.paths


def test_only_counter_and_fused_with_counts_read_the_counts() -> None:
    """`kgfuse compare` swaps the mode: its text and graph controls must not read counts."""
    from fusion.model import ModelConfig

    assert not ModelConfig(mode="text", counts=True).reads_counts
    assert not ModelConfig(mode="graph", counts=True).reads_counts
    assert ModelConfig(mode="counter").reads_counts
    assert ModelConfig(mode="fused", counts=True).reads_counts


def test_mention_masking_hides_every_linked_name_of_a_drawn_text() -> None:
    import random

    from fusion.optimization import mask_mentions
    from fusion.resources import Prepared

    text = "Bulbasaur: BULBASAUR naps in the sun."
    spans = [{"start": 0, "end": 9}, {"start": 11, "end": 20}]
    example = Prepared(text, 0, [1], spans)
    assert (
        mask_mentions(example, 1.0, "[MASK]", random.Random(0)) == "[MASK]: [MASK] naps in the sun."
    )
    assert mask_mentions(example, 0.0, "[MASK]", random.Random(0)) == text
    drawn = [mask_mentions(example, 0.5, "[MASK]", random.Random(i)) != text for i in range(200)]
    assert 70 < sum(drawn) < 130  # about half the draws, every name at once or none
    assert mask_mentions(Prepared("no names", 0, []), 1.0, "[MASK]", random.Random(0)) == "no names"


def test_explanations_rank_paths_in_log_odds_even_when_the_model_is_sure(trained) -> None:  # type: ignore[no-untyped-def]
    import torch

    from fusion.explain import log_odds
    from fusion.predict import Predictor

    logits = torch.tensor([[20.0, 0.0, 0.0], [21.0, 0.0, 0.0]])
    probs = torch.softmax(logits, dim=-1)[:, 0]
    assert float(probs[1] - probs[0]) < 1e-8  # a probability drop would call this nothing
    odds = log_odds(logits, 0)
    assert float(odds[1] - odds[0]) == pytest.approx(1.0, abs=1e-4)  # log-odds see the step
    predictor = Predictor.from_dir(trained.bundle)
    (p,) = predictor.predict(["covid-19 and a cough"], explain_paths=True)
    assert p.paths and all(isinstance(path.score, float) for path in p.paths)
    scores = [path.score for path in p.paths]
    assert scores == sorted(scores, reverse=True)


def test_paths_encoder_trains_with_the_options_and_explains_from_its_gradients(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from fusion.predict import Predictor

    result = main(
        TINY,
        overrides(
            tiny_bert,
            tmp_path / "paths",
            "model.graph_encoder=paths",
            "train.epochs=1",
            "train.swap_mentions=1",
            "train.adversarial=0.5",
        ),
        progress=False,
    )
    predictor = Predictor.from_dir(result.bundle)
    assert predictor.model.config.graph_encoder == "paths"
    (record,) = predictor.predict(["suffering from Influenza and cough"], explain_paths=True)
    assert record.paths, "the linked virus reaches the class nodes"
    kg = predictor.resources.graph
    for path in record.paths:
        assert isinstance(path.attribution, float)
        for hop in path.hops:  # every hop is a triple of the KG
            s, p, o = (
                kg.entity_id(hop.subject.iri),
                kg.relation_id(hop.predicate.iri),
                kg.entity_id(hop.object.iri),
            )
            assert kg.has_triple(s, p, o)
    # int8 layers (`kgfuse export --int8`) pass no gradient: the candidates are then enumerated
    import torch

    encoder = predictor.model.path_encoder
    predictor.model.path_encoder = torch.ao.quantization.quantize_dynamic(
        encoder, {torch.nn.Linear}, dtype=torch.qint8
    )
    (record,) = predictor.predict(["suffering from Influenza and cough"], explain_paths=True)
    assert record.paths and all(p.attribution is None for p in record.paths)


def test_compare_rows_are_picked_by_name_and_an_unknown_one_is_refused() -> None:
    from fusion.compare import pick_variants

    variants, references = pick_variants("reference, text,fused-no-gnn")
    assert [v.name for v in variants] == ["text", "fused-no-gnn"] and references == ("reference",)
    variants, references = pick_variants("reference-counts,graph")
    assert [v.name for v in variants] == ["graph"] and references == ("reference-counts",)
    variants, references = pick_variants("")
    assert len(variants) > 5 and references == ("reference", "reference-counts")
    with pytest.raises(ConfigError, match=r"unknown row\(s\) \['fused-gat'\].*fused-no-gnn"):
        pick_variants("fused,fused-gat")


def test_self_training_labels_unlabelled_texts_and_keeps_a_round_only_if_validation_agrees(
    tiny_bert: Path, tmp_path: Path
) -> None:
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("a bad case of influenza\ncovid-19 and a cough\nsneezing all day\n")
    result = main(
        TINY,
        overrides(
            tiny_bert,
            tmp_path / "st",
            "train.epochs=1",
            f"data.unlabeled={unlabeled}",
            "train.self_training_rounds=2",
            "train.self_training_threshold=0.01",
        ),
        progress=False,
    )
    meta = json.loads((result.bundle / "bundle.json").read_text())
    rounds = meta["training"]["self_training"]
    assert rounds and rounds[0]["labelled"] == 3  # every text clears a 1% threshold
    for r in rounds:
        assert r["kept"] == (r["score_after"] >= r["score_before"])
    assert (result.run_dir / "self-training-1" / "metrics.jsonl").is_file()


def test_self_training_needs_unlabelled_texts_and_refuses_a_bad_file(
    tiny_bert: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"data\.unlabeled"):
        load_config(TINY, ["train.self_training_rounds=1"])
    bad = tmp_path / "unlabeled.csv"
    bad.write_text('text\nfine\n""\n')
    out = tmp_path / "st"
    with pytest.raises(DataError, match=r"unlabeled\.csv:3: row 2 has an empty 'text'"):
        main(
            TINY,
            overrides(tiny_bert, out, f"data.unlabeled={bad}", "train.self_training_rounds=1"),
            progress=False,
        )
    assert not out.exists()


def test_unlabelled_texts_about_entities_validation_holds_out_are_left_out() -> None:
    from fusion.resources import Prepared
    from fusion.self_training import usable

    train = [Prepared("a", 0, [1, 2])]
    val = [Prepared("b", 0, [2]), Prepared("c", 1, [3])]  # 3: held out from training
    unlabeled = [Prepared("x", -1, [1]), Prepared("y", -1, [3, 1]), Prepared("z", -1, [])]
    assert [p.text for p in usable(unlabeled, train, val)] == ["x", "z"]


def test_the_text_head_starts_as_the_probe_fitted_on_validation(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """With learning rates too small to move anything, the trained text head is the logistic
    regression on the frozen encoder's vectors, fitted on the run's own training split with C
    chosen on its validation texts."""
    from fusion.probe import fit_text_probe
    from fusion.setup import Workspace, plan_run

    still = ("model.mode=text", "train.epochs=1", "train.lr=1e-12", "train.lora_lr=1e-12")
    args = overrides(tiny_bert, tmp_path / "probe", *still, "train.weight_decay=0")
    result = main(TINY, args, progress=False)
    model, _, meta = load_bundle(result.bundle)

    config = load_config(TINY, args)
    workspace = Workspace.open(config, None)
    plan = plan_run(config, workspace)
    splits = plan.splits
    index = {label: i for i, label in enumerate(splits.labels)}
    flags = plan.selection.flags(splits.val_unseen)
    val = [e for e, f in zip(splits.val, flags, strict=True) if f]
    expected = fit_text_probe(
        workspace.pooled([e.text for e in splits.train]),
        np.array([index[e.label] for e in splits.train]),
        workspace.pooled([e.text for e in val]),
        np.array([index[e.label] for e in val]),
        len(splits.labels),
    )
    head = model.text_head[-1]
    assert np.allclose(head.weight.detach().numpy(), expected.weight, atol=1e-5)
    assert np.allclose(head.bias.detach().numpy(), expected.bias, atol=1e-5)
    assert meta["training"]["probe"]["C"] == expected.C


def test_a_fused_head_that_reads_the_counts_starts_as_the_probe_on_text_and_counts(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """A concat counts head reads [text vector; label counts], so its probe is the regression
    on both, each text's counts as training and validation prepared them (label facts masked
    alike): the fused model starts where the reference's regression ends, not at zero weight
    on the counts."""
    from fusion.probe import fit_text_probe
    from fusion.setup import Workspace, plan_run
    from fusion.train import _prepare_texts, _resolved

    still = ("train.epochs=1", "train.lr=1e-12", "train.lora_lr=1e-12", "train.weight_decay=0")
    args = overrides(
        tiny_bert, tmp_path / "probe", *still, "train.probe_init=true", "model.counts_head=concat"
    )
    result = main(TINY, args, progress=False)
    model, _, meta = load_bundle(result.bundle)
    assert meta["training"]["probe"]["counts"] is True

    config = load_config(TINY, args)
    workspace = Workspace.open(config, None)
    plan = plan_run(config, workspace)
    config = _resolved(config, plan)
    resources = plan.resources.walking(config.model.reads_walks)
    texts = _prepare_texts(config, plan, resources, [], True)
    splits = plan.splits
    index = {label: i for i, label in enumerate(splits.labels)}
    flags = plan.selection.flags(splits.val_unseen)
    val = [i for i, f in enumerate(flags) if f]

    def inputs(examples: list, prepared: list, rows: list[int]) -> np.ndarray:  # type: ignore[type-arg]
        vectors = workspace.pooled([examples[i].text for i in rows])
        return np.hstack([vectors, np.stack([prepared[i].counts for i in rows])])

    train = list(range(len(splits.train)))
    expected = fit_text_probe(
        inputs(splits.train, texts.train, train),
        np.array([index[splits.train[i].label] for i in train]),
        inputs(splits.val, texts.val, val),
        np.array([index[splits.val[i].label] for i in val]),
        len(splits.labels),
    )
    head = model.text_head[-1]
    width = workspace.pooled([splits.train[0].text]).shape[1]  # the text vector's columns
    assert head.in_features == expected.weight.shape[1] > width
    assert np.allclose(head.weight.detach().numpy(), expected.weight, atol=1e-5)
    assert np.abs(expected.weight[:, width:]).sum() > 0  # the counts' columns are fitted too
