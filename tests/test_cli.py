"""The CLI's shared conventions: help with examples, --json, exit codes."""

import json

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
