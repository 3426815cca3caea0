"""The cost of a method's networks: parameters, MACs, latency and memory (`bench profile`,
and every run). Named "cost" so that "profile" keeps one meaning in the code, a config
profile (smoke, paper); the logged metrics keep their historical ``profile/`` prefix, which
stores and reports already hold.

Two counts per network, labelled as such (docs/environment.md §5, docs/methods.md §5):
- "paper" (thop 0.1.1, the version the papers pinned): what RDDM Table 11 printed. thop
  dispatches on exact module type, so weight-standardised convs, norms and attention
  matmuls count zero. It runs on a deep copy because it leaves buffers behind.
- "audited": the parameter sum, and MACs from torch.utils.flop_counter (FLOPs / 2).

Per image = per forward x networks x sampling steps.
"""

from __future__ import annotations

import copy
import resource
import statistics
import time
from typing import Any

import torch
from torch import nn


def thop_counts(network: nn.Module, inputs: tuple) -> tuple[float, float]:
    """(MACs, params) as thop counts them, on a deep copy so ``network`` is untouched."""
    import thop

    replica = copy.deepcopy(network).eval()
    with torch.no_grad():
        macs, params = thop.profile(replica, inputs=inputs, verbose=False, report_missing=False)
    return float(macs), float(params)


def flop_counter_macs(network: nn.Module, inputs: tuple) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        network(*inputs)
    return counter.get_total_flops() / 2


def latency(
    network: nn.Module, inputs: tuple, repeats: int = 15, warmup: int = 3
) -> dict[str, float]:
    """Median and interquartile range of one forward, in seconds, after warm-up.

    On CUDA: events around each call, synchronised, with cudnn.benchmark on.
    """
    cuda = next(network.parameters()).is_cuda
    times = []
    with torch.no_grad():
        if cuda:
            torch.backends.cudnn.benchmark = True
        for index in range(warmup + repeats):
            if cuda:
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                torch.cuda.synchronize()
                start.record()
                network(*inputs)
                end.record()
                torch.cuda.synchronize()
                elapsed = start.elapsed_time(end) / 1000
            else:
                started = time.perf_counter()
                network(*inputs)
                elapsed = time.perf_counter() - started
            if index >= warmup:
                times.append(elapsed)
    quartiles = statistics.quantiles(times, n=4)
    return {
        "median": statistics.median(times),
        "iqr": quartiles[2] - quartiles[0],
        "repeats": repeats,
    }


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"gpu_peak_mib": torch.cuda.max_memory_allocated(device) / 2**20}
    # ru_maxrss is in KiB on Linux: the process's peak resident set, not one forward's
    return {"process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


COUNTS = ("params", "params_thop", "macs", "macs_thop")


def _inputs(method: Any, name: str, size: int, device: torch.device | str) -> tuple:
    return tuple(
        x.to(device) if torch.is_tensor(x) else x
        for x in method.example_inputs(name, batch=1, size=size)
    )


def network_counts(network: nn.Module, inputs: tuple) -> dict[str, float]:
    """Parameters and MACs of one forward, as thop counts them and audited."""
    thop_macs, thop_params = thop_counts(network, inputs)
    return {
        "params": sum(p.numel() for p in network.parameters()),
        "params_thop": thop_params,
        "macs": flop_counter_macs(network, inputs),
        "macs_thop": thop_macs,
    }


def static_counts(method: Any, size: int, steps: int) -> dict[str, float]:
    """Per step and per image counts of ``method``'s networks without running them: the
    networks are moved to the meta device (shapes only), so this takes a second at 256x256
    and the papers' widths. ``method`` is left on the meta device."""
    per_step = dict.fromkeys(COUNTS, 0.0)
    for name, network in method.networks().items():
        network.to("meta").eval()
        for key, value in network_counts(network, _inputs(method, name, size, "meta")).items():
            per_step[key] += value
    return per_step | {
        "macs_per_image": per_step["macs"] * steps,
        "macs_thop_per_image": per_step["macs_thop"] * steps,
    }


def measure_cost(
    method: Any, size: int, steps: int, device: torch.device, repeats: int = 15
) -> dict[str, Any]:
    """The cost logged with every run and printed by ``bench profile``."""
    method.to(device).eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    networks = {}
    for name, network in method.networks().items():
        inputs = _inputs(method, name, size, device)
        networks[name] = network_counts(network, inputs) | {
            "latency_s": latency(network, inputs, repeats=repeats)
        }
    per_step = {key: sum(n[key] for n in networks.values()) for key in COUNTS}
    step_latency = sum(n["latency_s"]["median"] for n in networks.values())
    return {
        "size": size,
        "steps": steps,
        "device": str(device),
        "networks": networks,
        "total": {
            **per_step,
            "macs_per_image": per_step["macs"] * steps,
            "macs_thop_per_image": per_step["macs_thop"] * steps,
            "latency_step_s": step_latency,
            "latency_image_s": step_latency * steps,
        },
        "memory": peak_memory_mib(device),
    }


def cost_metrics(cost: dict[str, Any]) -> dict[str, float]:
    """The cost as MLflow metrics under ``profile/``."""
    total = cost["total"]
    metrics = {
        "profile/params_m": total["params"] / 1e6,
        "profile/params_thop_m": total["params_thop"] / 1e6,
        "profile/gmacs_step": total["macs"] / 1e9,
        "profile/gmacs_thop_step": total["macs_thop"] / 1e9,
        "profile/gmacs_image": total["macs_per_image"] / 1e9,
        "profile/gmacs_thop_image": total["macs_thop_per_image"] / 1e9,
        "profile/latency_step_s": total["latency_step_s"],
        "profile/latency_image_s": total["latency_image_s"],
    }
    for name, network in cost["networks"].items():
        metrics[f"profile/{name}/latency_iqr_s"] = network["latency_s"]["iqr"]
    for key, value in cost["memory"].items():
        metrics[f"profile/{key}"] = value
    return metrics
