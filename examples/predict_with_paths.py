"""The Python API in one page: classify shop messages with a trained bundle, print the graph
paths behind each prediction, then teach the model about a brand-new product without retraining.

    make demo                                   # trains runs/demo/fused/bundle (once)
    .venv/bin/python examples/predict_with_paths.py [BUNDLE]
"""

from __future__ import annotations

import sys

import kg
from fusion.predict import Predictor
from fusion.prediction import Prediction

SHOP = "http://example.org/shopkg/"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"


def show(predictions: list[Prediction]) -> None:
    for p in predictions:
        confidence = p.probabilities[p.label]
        print(f"\n{p.text}\n  -> {p.label} ({confidence:.2f})")
        for e in p.entities:
            print(f"  linked {e.text!r} to {e.label} <{e.iri}>")
        for path in p.paths or []:
            print(f"  path: {path.text}  (occlusion score {path.score:.3f})")


def main(bundle: str) -> None:
    predictor = Predictor.from_dir(bundle)
    print("labels:", ", ".join(predictor.labels))
    show(
        predictor.predict(
            ["The Lantis L2 flickers when dimmed below 20%.", "My Tallis T7 fan is really loud."],
            explain_paths=True,
            top_k_paths=2,
        )
    )

    # A product launched after training: two facts make it known, no retraining needed.
    message = ["Does the Lantis L9 fit a standard E27 socket?"]
    print("\nbefore the KG knows the Lantis L9:")
    show(predictor.predict(message, explain_paths=True))
    graph = kg.extend_triples(
        predictor.resources.graph,
        [
            (SHOP + "model/lantis_l9", RDFS_LABEL, "Lantis L9"),
            (SHOP + "model/lantis_l9", SHOP + "inLine", SHOP + "line/lantis"),
        ],
    )
    print("\nafter adding (Lantis L9, in product line, Lantis):")
    show(predictor.with_graph(graph).predict(message, explain_paths=True))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo/fused/bundle")
