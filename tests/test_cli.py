"""The CLI's shared conventions: help with examples, --json, exit codes."""

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bench.cli import app


def test_help_lists_commands_with_purpose():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "env" in result.output


def test_every_command_help_has_an_example():
    import typer.main

    group = typer.main.get_command(app)

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path

    paths = list(walk(group, []))
    assert ["env"] in paths
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, path
        assert "Example" in result.output, f"bench {' '.join(path)} --help has no example"


def test_env_json_is_a_complete_record():
    result = CliRunner().invoke(app, ["env", "--json"])
    assert result.exit_code == 0
    record = json.loads(result.stdout)
    assert record["torch"]
    assert record["packages"]["torch"]
    assert set(record["git"]) == {"commit", "dirty"}
    assert "cuda_available" in record
    assert record["config"]["tracking_uri"].startswith(("sqlite:///", "http", "file:"))


def test_unknown_command_is_usage_error():
    result = CliRunner().invoke(app, ["frobnicate"])
    assert result.exit_code == 2


def _run(*args):
    return CliRunner().invoke(app, ["run", *args], terminal_width=200)


def test_run_refuses_before_any_work_with_one_line(tmp_path, monkeypatch):
    """Cases that used to end in a traceback, or fail only after training."""
    monkeypatch.chdir(tmp_path)
    cases = {
        ("synth-shadow", "--methods", "ddim"): "methods for shadow-removal: rddm",
        ("synth-faces", "--methods", "sr3"): "method sr3 does not apply to dataset synth-faces",
        ("synth-shadow", "--methods", "resfusion", "--steps", "2"): "samples in exactly T'=5",
        ("synth-shadow", "--seeds", ""): "--seeds: run.seeds is empty",
        ("synth-shadow", "--seeds", "0,0"): "lists 0 more than once",
        ("synth-shadow", "--methods", "rddm", "-o", "sum_scal=1"): "no option 'sum_scal'",
    }
    for args, text in cases.items():
        result = _run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert text in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_unwritable_results_folder_is_one_line_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = tmp_path / "bench.toml"
    config.write_text(f'[paths]\nresults_dir = "{blocker}/results"\n')
    result = _run("synth-shadow", "--methods", "rddm", "-c", str(config))
    assert result.exit_code == 2  # a setting to change, as every configuration error
    text = " ".join(result.output.split())
    assert f"{blocker}/results cannot be written" in text and "[paths] results_dir" in text
    assert "Traceback" not in result.output


def test_progress_without_a_terminal_prints_lines_with_loss(capsys, monkeypatch):
    from bench import console

    monkeypatch.setattr(console, "LOG_EVERY_SECONDS", 0.0)
    with console.progress_bar("training rddm", 3) as advance:
        for i in range(3):
            advance(loss=0.5 / (i + 1))
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("training rddm: 3/3 loss 0.1667")
    assert "s left" in lines[1]


def test_the_time_left_leaves_out_the_first_steps_warm_up(capsys, monkeypatch):
    """A 100 s first step (warm-up), then 1 s per step: after 11 of 50 steps, 39 s are left,
    not the ~390 s the average since the start would say."""
    from bench import console

    clock = iter([0.0, 100.0, *(100.0 + k for k in range(1, 60))])
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    monkeypatch.setattr(console, "LOG_EVERY_SECONDS", 0.0)
    with console.progress_bar("training", 50) as advance:
        for _ in range(11):
            advance()
    lines = capsys.readouterr().err.strip().splitlines()
    assert "s left" not in lines[0]  # one step: no rate yet
    assert lines[-1] == "training: 11/50 (110 s, about 39 s left)"


def test_cli_start_up_imports_no_heavy_library():
    """`bench --help` and `bench data list` must start fast: importing the CLI loads neither
    torch, mlflow, matplotlib nor pandas (each costs 0.2-1 s); commands import them inside."""
    import subprocess
    import sys

    code = (
        "import sys, bench.cli; "
        "print(sorted(m for m in ('torch', 'mlflow', 'matplotlib', 'pandas', 'skimage') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_help_at_80_columns_cuts_nothing_and_lists_the_methods():
    result = CliRunner().invoke(app, ["run", "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0
    text = result.output
    assert "…" not in text
    assert not re.search(r"\w [.,](\s|$)", text)  # no markup eaten before a full stop
    assert max(len(line) for line in text.splitlines()) <= 80
    joined = " ".join(text.split())
    assert "[default: the profile's]" in joined and "[default: run.methods of the config]" in joined
    for name in ("rddm", "resfusion", "sr3", "ddim", "rddm-sm-res"):
        assert name in joined
    assert "examples/residual_regressor.py" in joined and "--trust-checkpoint" in joined
    assert "bench run --table rddm-table-10 --seeds 0,1,2" in text  # examples kept as written


def test_help_into_a_closed_pipe_exits_quietly():
    """`bench run --help | head -1`: the reader stops early; no error, no exit 1."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--help"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "80"},
    )
    process.stdout.read(20)
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and stderr == b""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seeds", "a"], "--seeds 'a' is not a comma-separated list of ints, e.g. --seeds 0,1,2"),
        (["--methods", "rdm"], "'rdm', which is not a method; did you mean 'rddm'?"),
        (["synth-shadw"], "is not a dataset; did you mean 'synth-shadow'?"),
    ],
)
def test_bad_values_name_the_option_and_the_near_miss(args, expected):
    result = _run(*args)
    assert result.exit_code == 2
    assert expected in " ".join(result.output.split())
