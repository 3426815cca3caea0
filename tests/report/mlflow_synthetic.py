"""Synthetic MLflow stores written the way the runner writes them (bench.runner.grid and
bench.runner.execute): a parent run per invocation, child cell runs with ``cell.*`` params,
``<protocol>/<metric>`` and ``profile/*`` metrics, ``unavailable.*`` tags and a
``train/loss`` history. No training happens: the values are chosen by the tests."""

from __future__ import annotations

from typing import Any

from bench.tracking import FINISHED, Tracker

HARDWARE = "Synthetic CPU @ 2.0GHz"

#: a profile as bench.cost.cost_metrics logs it (numbers are the tests' choice)
PROFILES = {
    "rddm": {"params_m": 36.4, "params_thop_m": 15.49, "gmacs_step": 240.0, "gmacs_thop_step": 67.1},
    "resfusion": {"params_m": 18.2, "params_thop_m": 7.744, "gmacs_step": 120.0, "gmacs_thop_step": 33.35},
    "sr3": {"params_m": 160.1, "params_thop_m": 155.29, "gmacs_step": 400.0, "gmacs_thop_step": 155.3},
}  # fmt: skip


def profile_metrics(method: str, steps: int, latency_step: float) -> dict[str, float]:
    base = PROFILES[method]
    return {
        **{f"profile/{k}": v for k, v in base.items()},
        "profile/gmacs_image": base["gmacs_step"] * steps,
        "profile/gmacs_thop_image": base["gmacs_thop_step"] * steps,
        "profile/latency_step_s": latency_step,
        "profile/latency_image_s": latency_step * steps,
    }


class Writer:
    """Adds runs to one experiment of one store."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.tracker = Tracker(uri, experiment)

    def grid(self, dataset: str, profile: str = "paper") -> str:
        tags = {"run_kind": "grid", "dataset": dataset, "profile": profile, "device": "cpu"}
        tags |= {"git_commit": "0" * 40, "git_dirty": False}
        parent = self.tracker.start(f"{dataset} {profile}", tags)
        self.tracker.log_json(
            parent,
            {"python": "3.12", "cpu": HARDWARE, "gpus": [], "torch": "2.13.0"},
            "environment.json",
        )
        self.tracker.end(parent, FINISHED)
        return parent

    def cell(
        self,
        parent: str | None,
        method: str,
        dataset: str,
        protocol: str,
        *,
        seed: int = 0,
        profile: str = "paper",
        steps: int = 5,
        iterations: int = 80000,
        image_size: int = 256,
        unet_dim: int = 64,
        options: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        unavailable: dict[str, str] | None = None,
        loss: list[tuple[int, float]] | None = None,
        status: str = FINISHED,
        tags: dict[str, Any] | None = None,
        hardware: str | None = HARDWARE,
    ) -> str:
        all_tags = {"run_kind": "cell", "method": method, "dataset": dataset, "seed": seed}
        all_tags |= {"profile": profile, "protocol": protocol, "device": "cpu"}
        if hardware:
            all_tags["hardware"] = hardware
        all_tags |= tags or {}
        run = self.tracker.start(f"{method} seed{seed}", all_tags, parent=parent)
        cell = {
            "dataset": dataset, "method": method, "seed": seed, "profile": profile,
            "protocol": protocol, "steps": steps, "iterations": iterations,
            "image_size": image_size, "unet_dim": unet_dim, "options": options or {}, "eta": 0.0,
        }  # fmt: skip
        self.tracker.log_params(run, {"cell": cell})
        self.tracker.log_metrics(run, metrics or {})
        self.tracker.set_tags(run, {f"unavailable.{k}": v for k, v in (unavailable or {}).items()})
        if loss:
            self.tracker.log_history(run, "train/loss", loss)
        self.tracker.end(run, status)
        return run

    def bare(self, tags: dict[str, str], metrics: dict[str, float]) -> str:
        """A run as an older harness wrote it: a few tags and metrics, no params."""
        run = self.tracker.start("old", tags)
        self.tracker.log_metrics(run, metrics)
        self.tracker.end(run, FINISHED)
        return run
