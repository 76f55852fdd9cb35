"""How `kgfuse serve --ray` places the app on Ray (api/ray_serve.py): `RayOptions`, checked like
the other serve settings (api/settings.py), whose errors and option names it shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from api.settings import SETTINGS, SettingsError, checked, option_of


def _ray(option: str) -> Any:
    """Field metadata of a Ray option: its flag, and its panel of ``kgfuse serve --help``."""
    return {"option": option, "panel": "Ray Serve"}


@dataclass(frozen=True, config=SETTINGS)
class RayOptions:
    """How `kgfuse serve --ray` places the app on Ray (api/ray_serve.py). Checked when built:
    first each value, then how they combine.

    Giving both autoscaling bounds switches autoscaling on; ``replicas`` is then ignored.
    """

    replicas: int = Field(default=1, ge=1, json_schema_extra=_ray("--replicas"))
    """replicas, each with its own model"""
    autoscale_min: int | None = Field(default=None, ge=0, json_schema_extra=_ray("--autoscale-min"))
    """autoscale between this and --autoscale-max replicas (replaces --replicas; 0: scale to zero)"""
    autoscale_max: int | None = Field(default=None, ge=1, json_schema_extra=_ray("--autoscale-max"))
    """most replicas when autoscaling"""
    target_ongoing_requests: float | None = Field(
        default=None, gt=0, json_schema_extra=_ray("--target-ongoing-requests")
    )
    """requests in flight per replica the autoscaler aims at (none: Ray's 2)"""
    upscale_delay_s: float | None = Field(
        default=None, ge=0, json_schema_extra=_ray("--upscale-delay")
    )
    """seconds the load must stay above the target before a replica is added (none: Ray's 30)"""
    downscale_delay_s: float | None = Field(
        default=None, ge=0, json_schema_extra=_ray("--downscale-delay")
    )
    """seconds the load must stay below the target before a replica is removed (none: Ray's 600)"""
    replica_cpus: float = Field(default=1.0, gt=0, json_schema_extra=_ray("--replica-cpus"))
    """CPUs Ray reserves per replica (also its OpenMP threads)"""
    address: str | None = Field(default=None, json_schema_extra=_ray("--ray-address"))
    """join a running cluster: 'auto' (this node's) or 'ray://HEAD:10001' (none: start a local Ray
    instance)"""
    num_cpus: int | None = Field(default=None, ge=1, json_schema_extra=_ray("--ray-num-cpus"))
    """CPUs of the local Ray instance (none: every core)"""

    @model_validator(mode="wrap")
    @classmethod
    def _all_at_once(cls, values: Any, handler: Callable[[Any], Any]) -> Any:
        options: RayOptions = checked(cls, values, handler)
        if problems := options._conflicts():
            raise SettingsError.listing(problems)
        return options

    @property
    def autoscaling(self) -> bool:
        return self.autoscale_min is not None and self.autoscale_max is not None

    def _conflicts(self) -> list[tuple[str, str]]:
        """Values that are each fine but do not go together, as ``(field, problem)`` pairs."""
        low, high = self.autoscale_min, self.autoscale_max
        low_flag, high_flag = (
            option_of(RayOptions, "autoscale_min"),
            option_of(RayOptions, "autoscale_max"),
        )
        bounds = f"{low_flag} and {high_flag}"
        problems = []
        if (low is None) != (high is None):
            given = "autoscale_min" if high is None else "autoscale_max"
            problems.append((given, f"autoscaling needs both {bounds}"))
        elif low is not None and high is not None and high < low:
            problems.append(
                ("autoscale_max", f"must be at least {low_flag} (got {high}, min {low})")
            )
        if not self.autoscaling:
            for name in ("target_ongoing_requests", "upscale_delay_s", "downscale_delay_s"):
                if getattr(self, name) is not None:
                    problems.append((name, f"needs {bounds}"))
        if self.num_cpus is not None and self.address is not None:
            cluster = f"{option_of(RayOptions, 'address')} {self.address}"
            why = "sizes a local Ray instance; a cluster's size is set by `ray start`"
            problems.append(("num_cpus", f"{why} (got {cluster})"))
        return problems
