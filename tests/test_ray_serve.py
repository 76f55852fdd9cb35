"""`kgfuse serve --ray`: Ray Serve replicas answer like the plain app; bad options and clusters
are one clear line. Needs Ray (``pip install -e '.[ray]'``): without it these tests fail."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.ray_serve import APP_NAME, connect, deploy, deployment_options, require_ray
from api.ray_settings import RayOptions
from api.settings import ServeSettings, SettingsError
from tests.conftest import REPO, run_cli

pytestmark = [
    pytest.mark.integration,
    # Ray Serve's own pydantic models, not ours
    pytest.mark.filterwarnings(
        "ignore:Using extra keyword arguments on `Field`:DeprecationWarning"
    ),
]

TEXTS = ["a bad case of influenza", "covid-19 and a cough", "my aunt has a fever"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A fresh local Ray instance of 2 CPUs for the module; Serve and Ray stop at the end."""
    try:
        require_ray()
    except Exception as e:
        pytest.fail(f"{e}. Install it into the venv: .venv/bin/pip install -e '.[ray]'")
    import ray
    from ray import serve

    connect(RayOptions(num_cpus=2))
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def plain_answers(tiny_bundle: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What the plain app (no Ray) answers: one prediction per text, and /v1/model."""
    with TestClient(create_app(ServeSettings(bundle=tiny_bundle))) as client:
        predictions = [predict(client, text) for text in TEXTS]
        return predictions, client.get("/v1/model").json()


def predict(client: httpx.Client | TestClient, text: str) -> dict[str, Any]:
    r = client.post("/v1/predict", json={"texts": [text], "explain": False})
    assert r.status_code == 200, r.text
    prediction: dict[str, Any] = r.json()["predictions"][0]
    return prediction


def running_replicas() -> int:
    from ray import serve

    deployment = serve.status().applications[APP_NAME].deployments[APP_NAME]
    states = {getattr(k, "value", k): n for k, n in deployment.replica_states.items()}
    return int(states.get("RUNNING", 0))


# ----------------------------------------------------------------- serving


def test_ray_serve_replicas_answer_like_the_plain_app(
    ray_cluster: None,
    tiny_bundle: Path,
    plain_answers: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    expected, model = plain_answers
    port = free_port()
    settings = ServeSettings(bundle=tiny_bundle, threads=1)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for replicas in (1, 2):  # the second deploy scales the same application up
            deploy(settings, RayOptions(replicas=replicas, replica_cpus=0.5), "127.0.0.1", port)
            assert running_replicas() == replicas
            assert client.get("/ready").status_code == 200
            for _ in range(2):  # enough requests for both replicas to answer some
                for text, want in zip(TEXTS, expected, strict=True):
                    got = predict(client, text)
                    assert got["label"] == want["label"], text
                    assert got["probabilities"].keys() == want["probabilities"].keys()
                    for label, p in want["probabilities"].items():
                        assert got["probabilities"][label] == pytest.approx(p, abs=1e-4)
            assert client.get("/v1/model").json() == model


def test_ray_serve_autoscaling_bounds_replace_the_replica_count() -> None:
    settings = ServeSettings(bundle=Path("."))
    fixed = deployment_options(settings, RayOptions(replicas=3))
    scaled = deployment_options(
        settings,
        RayOptions(replicas=3, autoscale_min=1, autoscale_max=4, target_ongoing_requests=8),
    )
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 8,
    }


def test_ray_serve_scaling_delays_reach_the_autoscaling_config() -> None:
    settings = ServeSettings(bundle=Path("."))
    delays = RayOptions(autoscale_min=1, autoscale_max=3, upscale_delay_s=5, downscale_delay_s=0)
    assert deployment_options(settings, delays)["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 3,
        "upscale_delay_s": 5,
        "downscale_delay_s": 0,  # 0 is a delay (none), not "Ray's default"
    }
    plain = deployment_options(settings, RayOptions(autoscale_min=1, autoscale_max=3))
    assert plain["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 3}  # Ray's delays


@pytest.mark.parametrize(
    ("options", "problems"),
    [
        (
            {"autoscale_min": 1, "autoscale_max": 3, "upscale_delay_s": -1},
            [("upscale_delay_s", "must be a number of 0 or more, or left out (got -1)")],
        ),
        (
            {"autoscale_min": 1, "autoscale_max": 3, "downscale_delay_s": float("nan")},
            [("downscale_delay_s", "must be a number of 0 or more, or left out (got nan)")],
        ),
        (
            {"replicas": 2, "upscale_delay_s": 5, "downscale_delay_s": 5},
            [
                ("upscale_delay_s", "needs --autoscale-min and --autoscale-max"),
                ("downscale_delay_s", "needs --autoscale-min and --autoscale-max"),
            ],
        ),
    ],
)
def test_ray_serve_refuses_a_negative_delay_or_one_without_autoscaling(
    options: dict[str, Any], problems: list[tuple[str, str]]
) -> None:
    with pytest.raises(SettingsError) as e:
        RayOptions(**options)
    assert e.value.problems == problems


def test_ray_serve_options_report_every_problem_at_once() -> None:
    """Every bad value at once; then, once each value is fine, every bad combination."""
    with pytest.raises(SettingsError) as e:
        RayOptions(replicas=0, target_ongoing_requests=0, replica_cpus=-1, num_cpus=0)
    assert [name for name, _ in e.value.problems] == [
        "replicas",
        "target_ongoing_requests",
        "replica_cpus",
        "num_cpus",
    ]
    with pytest.raises(SettingsError) as e:
        RayOptions(autoscale_min=3, upscale_delay_s=1, address="auto", num_cpus=2)
    assert e.value.problems == [
        ("autoscale_min", "autoscaling needs both --autoscale-min and --autoscale-max"),
        ("upscale_delay_s", "needs --autoscale-min and --autoscale-max"),
        (
            "num_cpus",
            "sizes a local Ray instance; a cluster's size is set by `ray start` "
            "(got --ray-address auto)",
        ),
    ]
    with pytest.raises(SettingsError, match="autoscale_max: must be at least --autoscale-min"):
        RayOptions(autoscale_min=3, autoscale_max=2)
    assert RayOptions(autoscale_min=0, autoscale_max=1).autoscaling  # 0: scale to zero


# ----------------------------------------------------------------- the command line


def test_ray_serve_cli_names_an_unreachable_cluster_and_how_to_start_one(
    tiny_bundle: Path,
) -> None:
    address = f"ray://127.0.0.1:{free_port()}"  # closed: nothing listens there
    r = run_cli("serve", str(tiny_bundle), "--ray", "--ray-address", address)
    assert r.returncode == 1, r.stderr
    assert "error:" in r.stderr and address in r.stderr and "ray start --head" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_ray_serve_cli_refuses_ray_options_without_ray(tiny_bundle: Path) -> None:
    r = run_cli("serve", str(tiny_bundle), "--replicas", "2", "--max-batch", "0")
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines()[1:] == [  # with the other settings' problems
        "  - --replicas: needs --ray (serving with Ray Serve)",
        "  - --max-batch: must be an integer of 1 or more (got 0)",
    ]
    r = run_cli("serve", str(tiny_bundle), "--ray-num-cpus", "2", "--autoscale-min", "1")
    assert r.returncode == 1, r.stderr
    assert "--autoscale-min: needs --ray" in r.stderr and "--ray-num-cpus: needs --ray" in r.stderr
    r = run_cli("serve", str(tiny_bundle), "--upscale-delay", "5", "--downscale-delay", "5")
    assert r.returncode == 1, r.stderr
    assert "--upscale-delay: needs --ray" in r.stderr
    assert "--downscale-delay: needs --ray" in r.stderr


def test_ray_serve_cli_refuses_a_negative_delay_before_starting_ray(tiny_bundle: Path) -> None:
    r = run_cli(
        "serve",
        str(tiny_bundle),
        "--ray",
        "--autoscale-min",
        "1",
        "--autoscale-max",
        "2",
        "--downscale-delay",
        "-5",
        "--max-batch",
        "0",
    )
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [  # with the other settings' problems, each by its option
        "error: 2 bad serve setting(s):",
        "  - --max-batch: must be an integer of 1 or more (got 0)",
        "  - --downscale-delay: must be a number of 0 or more, or left out (got -5.0)",
    ]


def test_ray_serve_without_ray_installed_says_how_to_install_it(tiny_bundle: Path) -> None:
    """Ray hidden from the import system: one line with the install command, no traceback;
    plain `kgfuse serve` never imports Ray."""
    code = (
        "import sys\n"
        "import api.cli\n"
        "assert 'ray' not in sys.modules, 'importing the CLI imported Ray'\n"
        "sys.modules['ray'] = None  # import ray now raises ImportError\n"
        "from api.ray_serve import require_ray\n"
        "try:\n    require_ray()\nexcept Exception as e:\n    print(e)\n"
        f"sys.argv = ['kgfuse', 'serve', {str(tiny_bundle)!r}, '--ray']\n"
        "api.cli.main()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert r.returncode == 1, r.stderr
    assert "Ray is not installed" in r.stdout and "pip install 'kgfuse[ray]'" in r.stdout
    assert r.stderr.startswith("error: Ray is not installed")
    assert "pip install 'kgfuse[ray]'" in r.stderr  # rich markup must not eat "[ray]"
    assert "Traceback" not in r.stderr
