"""DDP training of one cell: 2 gloo processes match one process on the same global batch;
rank 0 alone checkpoints and tracks; `bench run --nproc 2` end to end."""

from __future__ import annotations

import dataclasses
import socket

import pytest
import torch
import torch.multiprocessing as mp
from ddp_worker import Pairs, method, rank_main
from mlflow.tracking import MlflowClient
from test_run import short_config
from test_train import CELL
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import BenchError
from bench.runner.distributed import World, shard
from bench.runner.seeding import derived_seed
from bench.runner.train import ADAM_BETAS, GRAD_CLIP, BatchOrder, resumed_streams

# global batch 4 (2 per rank), two micro-batches per optimizer step: exercises no_sync
DDP_CELL = dataclasses.replace(
    CELL, image_size=16, batch_size=4, grad_accumulation=2, iterations=4, lr=1e-3,
    checkpoint_every=2, ema_every=1, ema_start=1,
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reference_losses(cell, size: int) -> tuple[list[float], dict]:
    """One process, written out plainly: the mean loss over the global batch, each rank's
    half of it noised from that rank's stream (the seeds the distributed run promises)."""
    model = method()
    data = Pairs()
    optimizer = torch.optim.Adam(model.parameters(), lr=cell.lr, betas=ADAM_BETAS)
    streams = [
        torch.Generator().manual_seed(derived_seed(cell.seed, f"diffusion/rank{rank}"))
        for rank in range(size)
    ]
    order = BatchOrder(len(data), cell.batch_size, cell.seed)
    per_rank = cell.batch_size // size
    losses = []
    for iteration in range(cell.iterations):
        optimizer.zero_grad()
        total = 0.0
        for micro in range(cell.grad_accumulation):
            indices = order.indices(iteration * cell.grad_accumulation + micro)
            for rank in range(size):
                items = [data[i] for i in indices[rank * per_rank : (rank + 1) * per_rank]]
                batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
                loss = model.loss(batch, generator=streams[rank])["loss"]
                loss = loss / (size * cell.grad_accumulation)
                loss.backward()
                total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        losses.append(total)
    return losses, model.state_dict()


def test_two_gloo_processes_match_one_process_on_the_global_batch(tmp_path):
    mp.spawn(rank_main, args=(2, str(tmp_path), free_port(), DDP_CELL), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"result{r}.pt", weights_only=False) for r in (0, 1)]
    expected, weights = reference_losses(DDP_CELL, size=2)

    logged = [[parts["loss"] for _, parts in r["losses"]] for r in results]
    assert logged[0] == logged[1]  # every rank logs the global batch's loss
    torch.testing.assert_close(logged[0], expected, rtol=1e-5, atol=1e-6)
    assert len(set(expected)) == len(expected)  # the weights did move
    # Adam divides by sqrt(v): float noise in tiny gradients shows in the weights, so compare
    # the two runs' difference with how far training moved the weights
    initial = method().state_dict()
    flat = {
        key: torch.cat([w[name].flatten().float() for name in initial])
        for key, w in (("ddp", results[0]["weights"]), ("ref", weights), ("init", initial))
    }
    moved = (flat["ref"] - flat["init"]).norm()
    assert (flat["ddp"] - flat["ref"]).norm() < 1e-3 * moved
    for name, value in results[0]["weights"].items():
        assert torch.equal(value, results[1]["weights"][name]), name  # ranks stay in step

    # rank 0 alone checkpoints, with both ranks' random streams for an exact resume
    assert (tmp_path / "rank0.pt").is_file() and not (tmp_path / "rank1.pt").exists()
    saved = torch.load(tmp_path / "rank0.pt", weights_only=False)
    assert saved["iteration"] == DDP_CELL.iterations and len(saved["rank_streams"]) == 2
    assert not torch.equal(
        saved["rank_streams"][0]["generator"], saved["rank_streams"][1]["generator"]
    )
    with pytest.raises(BenchError, match="written by 2 training process"):
        resumed_streams(saved, World())


def test_shards_partition_the_global_batch():
    batch = BatchOrder(size=10, batch_size=6, seed=2).indices(3)
    parts = [shard(batch, World(rank, 3)) for rank in range(3)]
    assert sum(parts, []) == batch
    with pytest.raises(BenchError, match="multiple of 4"):
        shard(batch, World(0, 4))


def test_bench_run_nproc_2_tracks_one_cell_from_rank_0(tmp_path):
    config = short_config(tmp_path)
    result = CliRunner().invoke(
        app, ["run", "-c", str(config), "-m", "rddm-sm-res", "--iters", "4", "--nproc", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "rddm-sm-res" in result.output and "FINISHED" in result.output
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    found = client.search_runs([experiment.experiment_id])
    kinds = sorted(r.data.tags["run_kind"] for r in found)
    assert kinds == ["cell", "grid", "identity"]  # rank 1 created no run
    cell = next(r for r in found if r.data.tags["run_kind"] == "cell")
    grid = next(r for r in found if r.data.tags["run_kind"] == "grid")
    assert cell.info.status == grid.info.status == "FINISHED"
    assert cell.data.tags["world_size"] == grid.data.tags["world_size"] == "2"
    assert "istd/psnr_all" in cell.data.metrics
    history = client.get_metric_history(cell.info.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    checkpoints = list((tmp_path / "results" / "checkpoints").rglob("*.pt"))
    assert [len(torch.load(p, weights_only=False)["rank_streams"]) for p in checkpoints] == [2]
