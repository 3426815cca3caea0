"""`bench ui`: the MLflow UI for the configured store, on the loopback interface only."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import Annotated

import typer

from bench import console
from bench.errors import BenchError
from bench.options import (
    ConfigOption,
    ExperimentOption,
    QuietOption,
    TrackingUriOption,
    examples,
    setup,
)

EXAMPLE = examples(
    "bench ui --port 5001   # then open the printed address",
    "bench ui --tracking-uri postgresql://user@db-host/mlflow   # a UI here on that database",
    "bench ui --tracking-uri http://tracking-host:5000   # prints the server's runs page",
)
HOST = "127.0.0.1"  # never another interface: the store holds unpublished results


def ui_command(port: int, uri: str) -> list[str]:
    from bench.tracking import artifact_root

    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", HOST, "--port", str(port), "--workers", "1"]
    if artifacts := artifact_root(uri):
        command += ["--default-artifact-root", artifacts]
    return command


#: a runs view the UI opens from the address (MLflow's shared view: an experiment tag whose
#: name the address's viewStateShareKey names)
VIEW_TAG = "mlflow.sharedViewState."
VIEW_KEY = "bench-runs"


def runs_view(client, experiment_id: str) -> dict:
    """The experiment's runs as a flat list with the headline metrics of its protocols as
    columns, best first on the first headline (sorting on a metric also lists the cells
    themselves rather than their collapsed parent run), with each run's dataset."""
    from bench.conventions import HEADLINES, base_of

    protocols = set()
    for run in client.search_runs([experiment_id], "tags.run_kind = 'cell'", max_results=1000):
        if protocol := run.data.tags.get("protocol"):
            protocols.add(protocol)
    specs = [(p, spec) for p in sorted(protocols) for spec in HEADLINES.get(base_of(p), ())]
    columns = ["attributes.`Dataset`", "attributes.`Duration`"]
    columns += [f"metrics.`{protocol}/{spec.key}`" for protocol, spec in specs]
    view: dict = {
        "selectedColumns": columns,
        "columnOrder": columns,  # the protocol's order, not the alphabet's
        "searchFilter": "tags.run_kind != 'grid'",
    }
    if specs:
        protocol, spec = specs[0]
        view |= {
            "orderByKey": f"metrics.`{protocol}/{spec.key}`",
            "orderByAsc": spec.lower_is_better,
        }
    return view


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(
                f"the MLflow UI exited with code {process.returncode} before it was ready"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise BenchError(f"the MLflow UI did not answer at {url} within {timeout:.0f} s")


def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to start.")] = 60,
    experiment: ExperimentOption = None,
    tracking_uri: TrackingUriOption = None,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
) -> None:
    """Open the MLflow UI on the experiment's runs: start one for a SQLite file or a database,
    or point at a tracking server's own."""
    config = setup(config_path, quiet, overrides={"tracking": {"uri": tracking_uri, "experiment": experiment}})  # fmt: skip
    uri = config.tracking_uri()
    from bench.tracking import Tracker

    # the experiment's training runs, not MLflow 3's GenAI home page
    tracker = Tracker.open(uri, config.tracking.experiment)
    experiment_id = tracker.experiment_id
    view = runs_view(tracker.client, experiment_id)
    tracker.client.set_experiment_tag(experiment_id, VIEW_TAG + VIEW_KEY, json.dumps(view))
    runs_page = f"#/experiments/{experiment_id}/runs?" + urllib.parse.urlencode(
        {"workflowType": "machine_learning", "viewStateShareKey": VIEW_KEY}
    )
    if uri.startswith(("http://", "https://")):  # a tracking server serves its own UI
        console.out.print(f"MLflow UI for {uri}\n{uri.rstrip('/')}/{runs_page}")
        return
    url = f"http://{HOST}:{port}"
    # the server's own log goes to stderr: stdout carries only the URL. Its own session, so
    # stopping it stops its workers too; SIGTERM to bench ui stops them as Ctrl-C does.
    process = subprocess.Popen(ui_command(port, uri), stdout=sys.stderr, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        wait_until_ready(url, process, timeout)
        console.out.print(f"MLflow UI for {uri}\n{url}/{runs_page}  (Ctrl-C to stop)")
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(process)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group; SIGKILL to whatever of the group is
    still there 15 s later (a worker may outlive the server it belongs to)."""
    group = process.pid  # its own session: the group id is the server's pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None and not _group_alive(group):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
