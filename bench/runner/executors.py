"""Fan a grid's cells out: in this process, in local worker processes, or on Slurm.

Every executor calls one pure function, ``run_cell(cell, context) -> CellRecord`` with
picklable arguments, and returns the records in the cells' order. Each cell tracks its
own run in the shared MLflow store; a worker that dies before returning (killed, out of
memory, a crash in native code) gives a record with no run, which :func:`settle_lost`
turns into a FAILED run with the reason, so the grid's other cells are unaffected.

SQLite and several processes: MLflow opens SQLite with ``PRAGMA busy_timeout = 20000``,
so a writer waits up to 20 s for another's lock instead of failing; the parent creates
the store and the experiment before any worker starts, so no two processes race to
create the tables. A cluster needs a tracking server or a database every node reaches.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Protocol

from bench import console
from bench.config import SlurmConfig
from bench.errors import BenchError
from bench.runner.cells import Cell
from bench.runner.execute import CellRecord, RunContext, cell_tags, run_cell, run_name
from bench.tracking import FAILED, FINISHED, KILLED, Tracker

CellFunction = Callable[[Cell, RunContext], CellRecord]


class Executor(Protocol):
    def run(self, cells: list[Cell], context: RunContext) -> list[CellRecord]: ...


def lost(cell: Cell, reason: str, status: str = FAILED) -> CellRecord:
    """The record of a cell whose worker never returned one: FAILED, or KILLED when it was
    cancelled."""
    return CellRecord(cell, status, None, error=reason)


@dataclass
class InProcess:
    """One cell after the other in this process (``--jobs 1``; every rank under torchrun)."""

    function: CellFunction = run_cell

    def run(self, cells: list[Cell], context: RunContext) -> list[CellRecord]:
        records = []
        for index, cell in enumerate(cells, 1):
            console.info(f"[{index}/{len(cells)}] {cell.key}")
            records.append(self.function(cell, context))
        return records


def _work(function: CellFunction, cell: Cell, context: RunContext, threads: int, out: str):
    """A local worker: one cell, its record pickled to ``out`` (no pipe to fill and block)."""
    import torch

    torch.set_num_threads(threads)
    console.state.quiet = True  # several workers' progress bars would interleave
    record = function(cell, context)
    with open(out, "wb") as handle:
        pickle.dump(record, handle)


@dataclass
class LocalProcesses:
    """Up to ``jobs`` cells at once, each in a fresh process (spawned, one per cell).

    One process per cell: a worker that dies takes only its own cell with it (a process
    pool would be broken for every pending cell). The machine's cores are split evenly.
    """

    jobs: int
    function: CellFunction = run_cell

    def run(self, cells: list[Cell], context: RunContext) -> list[CellRecord]:
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        records: list[CellRecord | None] = [None] * len(cells)
        pending = list(enumerate(cells))
        running: dict[int, tuple[int, Any, Path]] = {}  # sentinel -> (index, process, out)
        with tempfile.TemporaryDirectory(prefix="bench-cells-") as folder:
            try:
                while pending or running:
                    while pending and len(running) < self.jobs:
                        index, cell = pending.pop(0)
                        out = Path(folder) / f"{index}.pickle"
                        process = spawn.Process(
                            target=_work, args=(self.function, cell, context, threads, str(out))
                        )
                        process.start()
                        running[process.sentinel] = (index, process, out)
                        console.info(f"[{index + 1}/{len(cells)}] {cell.key} started")
                    for sentinel in wait(list(running)):
                        index, process, out = running.pop(sentinel)
                        process.join()
                        records[index] = self._collect(cells[index], process.exitcode, out)
                        console.info(
                            f"[{index + 1}/{len(cells)}] {cells[index].key} {records[index].status}"
                        )
            finally:  # Ctrl-C or an error here: no orphaned workers
                for _, process, _ in running.values():
                    process.terminate()
                    process.join()
        return records  # type: ignore[return-value]

    @staticmethod
    def _collect(cell: Cell, exitcode: int | None, out: Path) -> CellRecord:
        if exitcode == 0 and out.is_file():
            with out.open("rb") as handle:
                return pickle.load(handle)
        return lost(cell, f"the worker process died (exit code {exitcode}) before finishing")


@dataclass
class _SlurmTask:
    """What each Slurm task runs: the cell, as one rank of a process group if it has several."""

    function: CellFunction
    threads: int  # the job's CPUs per task: torch would otherwise use every core it sees

    def __call__(self, cell: Cell, context: RunContext) -> CellRecord:
        import submitit
        import torch

        torch.set_num_threads(self.threads)
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        if restarts:  # requeued (preempted, node failure, scontrol requeue): continue
            done = settle_requeued(cell, context, restarts)
            if done is not None:  # the earlier attempt finished the cell before it was stopped
                return done
            context = dataclasses.replace(context, resume=True)

        from bench.runner.distributed import join, leave

        if submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export()
            join(context.device)
        try:
            return self.function(cell, context)
        finally:
            leave()


@dataclass
class Submitit:
    """Each cell as one task of a Slurm job array, through submitit.

    ``settings.cluster = "local"`` runs the same submission path as local processes
    (submitit's LocalExecutor): a dry run of a cluster job without a cluster.
    """

    settings: SlurmConfig
    folder: Path
    function: CellFunction = run_cell

    def run(self, cells: list[Cell], context: RunContext) -> list[CellRecord]:
        import submitit

        _route_submitit_logging()
        if self.settings.cluster == "slurm" and context.tracking_uri.startswith("sqlite:"):
            console.warn(
                f"Slurm jobs will write to the SQLite store {context.tracking_uri}; SQLite "
                "locks are unreliable on network filesystems: set tracking.uri to a tracking "
                "server (README, 'Running on a Slurm cluster')"
            )
        # submitit passes each job and its result as pickles in this folder: writable by
        # others, a planted pickle would run as this user. Created private; a shared one warned.
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.folder.stat().st_mode & 0o022:
            console.warn(
                f"{self.folder} is writable by other users; submitit reads job pickles from it, "
                "which can run code: make it private (chmod go-w) or set folder in the slurm "
                "table of bench.toml to a folder of your own"
            )
        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.settings.cluster)
        gpus = self.settings.gpus_per_cell
        parameters: dict[str, Any] = {
            "name": f"bench-{context.experiment}",
            "timeout_min": self.settings.time_minutes,
            "nodes": 1,
            "tasks_per_node": max(1, gpus),
            "cpus_per_task": self.settings.cpus_per_gpu,
            "mem_gb": self.settings.mem_gb,
        }
        if gpus:
            parameters["gpus_per_node"] = gpus
        if self.settings.cluster == "slurm":
            requeue = "requeue" if self.settings.requeue else "no_requeue"
            parameters["slurm_additional_parameters"] = {requeue: True, **self.settings.sbatch}
            if self.settings.partition:
                parameters["slurm_partition"] = self.settings.partition
            if self.settings.max_parallel:
                parameters["slurm_array_parallelism"] = self.settings.max_parallel
        executor.update_parameters(**parameters)
        try:
            jobs = executor.map_array(
                _SlurmTask(self.function, self.settings.cpus_per_gpu), cells, [context] * len(cells)
            )
        except Exception as error:  # submitit's FailedJobError carries sbatch's own message
            raise sbatch_refusal(error, self.settings) from None
        console.info(
            f"submitted {len(jobs)} cell(s) to {self.settings.cluster}: jobs "
            f"{', '.join(job.job_id for job in jobs)}; logs in {self.folder}"
        )
        try:
            return _collect(cells, jobs, watch=self.settings.cluster == "slurm")
        except KeyboardInterrupt:
            for job in jobs:
                job.cancel(check=False)
            raise


#: Slurm states after which a job writes nothing more (a preempted job is requeued: not here)
_ENDED = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                    "BOOT_FAIL", "DEADLINE"})  # fmt: skip
_POLL_SECONDS = 2.0


def squeue_states(job_ids: list[str]) -> dict[str, str]:
    """Each job's state from squeue, which answers without job accounting (and keeps a
    finished job for MinJobAge seconds); {} when squeue cannot be asked."""
    import subprocess

    try:
        listed = subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", "%i %T", "--jobs", ",".join(job_ids)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(line.split(maxsplit=1) for line in listed.stdout.splitlines() if " " in line)


def _collect(cells: list[Cell], jobs: list[Any], watch: bool) -> list[CellRecord]:
    """Each job's record as it ends, with one line whenever the counts of queued, running,
    done and failed jobs change. On Slurm (``watch``) a job's state comes from squeue, so a
    job that ended without a result (cancelled, out of time, its node lost) is seen even on a
    cluster without accounting, where submitit alone would wait for it forever."""
    import time

    records: dict[int, CellRecord] = {}
    shown = ""
    while len(records) < len(jobs):
        states = squeue_states([job.job_id for job in jobs]) if watch else {}
        for index, (cell, job) in enumerate(zip(cells, jobs, strict=True)):
            state = states.get(job.job_id, "")
            if index not in records and _ended(job, state, watch):
                records[index] = _record(cell, job, state)
        line = _progress_line(jobs, states, records)
        if watch and line != shown:
            console.info(line)
            shown = line
        if len(records) < len(jobs):
            time.sleep(_POLL_SECONDS)
    return [records[i] for i in range(len(jobs))]


def _ended(job: Any, state: str, watch: bool) -> bool:
    """The job left its result, or (watching Slurm) squeue says it ended without one."""
    if job.paths.result_pickle.exists():
        return True
    if not watch:
        return job.done()
    return bool(state) and state.split()[0] in _ENDED


def _progress_line(jobs: list[Any], states: dict[str, str], records: dict[int, CellRecord]) -> str:  # fmt: skip
    """ "slurm: Q queued, R running, D done, F failed"; a collected job counts as done or
    failed, whatever squeue still says."""
    waiting = [states.get(job.job_id, "") for i, job in enumerate(jobs) if i not in records]
    queued = sum(state.startswith(("PENDING", "REQUEUED")) for state in waiting)
    running = sum(state.startswith(("RUNNING", "COMPLETING")) for state in waiting)
    done = sum(r.status == FINISHED for r in records.values())
    return f"slurm: {queued} queued, {running} running, {done} done, {len(records) - done} failed"


def _record(cell: Cell, job: Any, state: str) -> CellRecord:
    """The job's own record (rank 0's, with several tasks), or the reason it left none."""
    if not job.paths.result_pickle.exists() and state:
        ended = state.split()[0]
        record = failed_job(cell, job, ended, f"the job ended {ended} without a result")
    else:
        try:
            record = job.results()[0]
        except Exception as error:  # submitit raises its own types for failed jobs
            text = str(error)
            said = next((s for s in _FAILED_STATES if s in text), "FAILED")
            record = failed_job(cell, job, said, (text.strip().splitlines() or [type(error).__name__])[-1])  # fmt: skip
        else:
            console.info(f"{cell.key}: {record.status} (job {job.job_id})")
            return record
    console.warn(f"{cell.key}: {record.error}")
    return record


#: the Slurm states submitit's errors name, for a job that returned no record
_FAILED_STATES = ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED")


def failed_job(cell: Cell, job: Any, state: str, reason: str) -> CellRecord:
    """A job that returned no record: its id, its Slurm state, the reason and its log; a
    cancelled job's cell is KILLED, not FAILED."""
    log = getattr(getattr(job, "paths", None), "stderr", None)
    message = f"job {job.job_id} {state}: {reason}" + (f"; log {log}" if log else "")
    return lost(cell, message, KILLED if state == "CANCELLED" else FAILED)


class _SacctFolded(logging.Filter):
    """submitit warns on every poll of a cluster without job accounting ("Bypassing sacct
    error"): one line says so, once, and the repeats are dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Bypassing sacct error" not in record.getMessage():
            return True
        if not self.said:
            self.said = True
            console.warn(
                "this cluster has no job accounting (sacct fails): each job's state is read "
                "from its result file, so a failed job is seen when its output is"
            )
        return False


def _route_submitit_logging() -> None:
    """submitit logs to standard output, which holds bench's results (the JSON document with
    --json): its messages go to standard error only, with the sacct warnings folded."""
    logger = logging.getLogger("submitit")
    for handler in list(logger.handlers):
        if handler.name == "submitit_out":  # submitit's own dictConfig names its handlers
            logger.removeHandler(handler)
    if not any(isinstance(f, _SacctFolded) for f in logger.filters):
        logger.addFilter(_SacctFolded())


#: words of an sbatch refusal -> the [slurm] setting of bench.toml that most likely caused it
_REFUSAL_SETTINGS = (
    ("gres", "gpus_per_cell"),
    ("gpu", "gpus_per_cell"),
    ("partition", "partition"),
    ("time limit", "time_minutes"),
    ("memory", "mem_gb"),
    ("cpu", "cpus_per_gpu"),
    ("account", "sbatch"),
    ("qos", "sbatch"),
)


def sbatch_refusal(error: Exception, settings: SlurmConfig) -> BenchError:
    """One line for a submission Slurm refused: sbatch's own message, and the setting in the
    slurm table of bench.toml that most likely caused it, with its value."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said = next((line for line in lines if "sbatch: error" in line), lines[-1] if lines else "")
    said = said[said.find("sbatch: error") :] if "sbatch: error" in said else said
    lower = said.lower()
    setting = next((name for word, name in _REFUSAL_SETTINGS if word in lower), None)
    if setting is None:
        hint = "check the slurm table of bench.toml (partition, time_minutes, gpus_per_cell, cpus_per_gpu, mem_gb, sbatch)"  # fmt: skip
    elif setting == "gpus_per_cell" and settings.gpus_per_cell:
        hint = (f"set gpus_per_cell = 0 in the slurm table of bench.toml on a cluster without "
                f"GPUs (it is {settings.gpus_per_cell})")  # fmt: skip
    else:
        hint = f"check {setting} in the slurm table of bench.toml (it is {getattr(settings, setting)!r})"  # fmt: skip
    return BenchError(f"Slurm refused the jobs: {said or type(error).__name__}; {hint}")


def settle_requeued(cell: Cell, context: RunContext, restarts: int) -> CellRecord | None:
    """The runs an earlier attempt of a requeued job left RUNNING end KILLED, saying so; the
    new attempt resumes from the checkpoint that attempt saved. When that attempt finished
    the cell (it was stopped while exiting), its record, and nothing runs again."""
    from bench.runner.execute import finished_record

    tracker = Tracker.open(
        context.tracking_uri, context.experiment, context.tracking_patience, True
    )
    done = finished_record(cell, context, tracker, parent=context.parent_run_id)
    found = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{context.parent_run_id}' "
        f"and tags.cell = '{cell.key}' and attributes.status = 'RUNNING'",
    )
    for run in found:
        reason = f"Slurm requeued the job (restart {restarts}); a new attempt continues the cell"
        if done is not None:
            reason = f"Slurm requeued the job (restart {restarts}) after run {done.run_id} finished the cell"
        tracker.set_tags(run.info.run_id, {"error": reason})
        tracker.end(run.info.run_id, KILLED)
    return done


def settle_lost(records: list[CellRecord], tracker: Tracker, context: RunContext) -> None:
    """Mark each lost cell's run FAILED (KILLED when cancelled) with the reason, creating the
    run if none began."""
    for record in records:
        if record.run_id is not None or record.status not in (FAILED, KILLED):
            continue
        found = tracker.client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{context.parent_run_id}' "
            f"and tags.cell = '{record.cell.key}' and attributes.status = 'RUNNING'",
        )
        record.run_id = (
            found[0].info.run_id
            if found
            else tracker.start(
                run_name(record.cell),
                cell_tags(record.cell, context),
                parent=context.parent_run_id,
            )
        )
        tracker.set_tags(record.run_id, {"error": record.error})
        tracker.end(record.run_id, record.status)


def make_executor(
    name: str, jobs: int, settings: SlurmConfig, results_dir: Path, config_folder: Path
) -> Executor:
    """The executor ``bench run --executor NAME --jobs N`` asks for."""
    if name == "slurm":
        folder = Path(settings.folder).expanduser() if settings.folder else results_dir / "slurm"
        return Submitit(settings, folder if folder.is_absolute() else config_folder / folder)
    return LocalProcesses(jobs) if jobs > 1 else InProcess()
