"""Weights: status, verified fetch (file:// stands in for the network), import."""

import hashlib
import json

import pytest
from typer.testing import CliRunner

from bench import weights as weight_files
from bench.cli import app
from bench.errors import BenchError, UsageError


@pytest.fixture
def small_spec(tmp_path, monkeypatch):
    """Replace the AlexNet entry by a small file whose real hash prefix is known."""
    payload = b"not really alexnet, but a file with a known digest"
    source = tmp_path / "served" / "alexnet-owt-7be5be79.pth"
    source.parent.mkdir()
    source.write_bytes(payload)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    spec = weight_files.WeightFile("alexnet", source.name, source.as_uri(), "LPIPS", prefix)
    monkeypatch.setitem(weight_files.WEIGHTS, "alexnet", spec)
    return spec, source


def test_status_of_an_empty_folder(tmp_path):
    records = {r["key"]: r for r in weight_files.status(tmp_path)}
    assert set(records) == {"alexnet", "inception"}
    assert all(r["present"] == "no" and r["verification"] == "missing" for r in records.values())


def test_fetch_verifies_and_installs(tmp_path, small_spec):
    spec, _ = small_spec
    found = weight_files.fetch("alexnet", tmp_path / "w")
    assert found.state == "prefix-verified" and found.path.read_bytes().startswith(b"not really")
    assert weight_files.status(tmp_path / "w")[0]["verification"] == "prefix-verified"


def test_fetch_with_wrong_hash_installs_nothing(tmp_path, small_spec, monkeypatch):
    spec, _ = small_spec
    bad = weight_files.WeightFile(spec.key, spec.filename, spec.url, spec.used_by, "00000000")
    monkeypatch.setitem(weight_files.WEIGHTS, "alexnet", bad)
    with pytest.raises(BenchError, match="nothing was installed"):
        weight_files.fetch("alexnet", tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == []  # no file, no leftover .part


def test_fetch_offline_is_a_clear_error(tmp_path, small_spec, monkeypatch):
    spec, source = small_spec
    gone = weight_files.WeightFile(spec.key, spec.filename, (source.parent / "x").as_uri(), "", "")
    monkeypatch.setitem(weight_files.WEIGHTS, "alexnet", gone)
    with pytest.raises(BenchError, match="cannot download .*bench weights import"):
        weight_files.fetch("alexnet", tmp_path / "w")


def test_import_checks_the_hash(tmp_path, small_spec):
    _, source = small_spec
    assert weight_files.import_file(source, tmp_path / "w").state == "prefix-verified"
    foreign = tmp_path / "foreign.pth"
    foreign.write_bytes(b"something else")
    with pytest.raises(UsageError, match="pass --as"):
        weight_files.import_file(foreign, tmp_path / "w2")
    with pytest.raises(UsageError, match="--allow-mismatch"):
        weight_files.import_file(foreign, tmp_path / "w2", key="inception")
    installed = weight_files.import_file(foreign, tmp_path / "w2", "inception", allow_mismatch=True)
    assert installed.state == "mismatch" and installed.path.name.startswith("weights-inception")


def test_cli_status_and_import(cli_config, tmp_path):
    config, weights = cli_config
    result = CliRunner().invoke(app, ["weights", "status", "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["weights_dir"] == str(weights)
    assert {w["present"] for w in record["weights"]} == {"no"}
    foreign = tmp_path / "foreign.pth"
    foreign.write_bytes(b"x")
    refused = CliRunner().invoke(
        app, ["weights", "import", str(foreign), "--as", "alexnet", "-c", str(config)]
    )
    assert refused.exit_code == 2 and not weights.exists()
    forced = [
        "weights",
        "import",
        str(foreign),
        "--as",
        "alexnet",
        "--allow-mismatch",
        "-c",
        str(config),
    ]
    assert CliRunner().invoke(app, forced).exit_code == 0
    assert (weights / "alexnet-owt-7be5be79.pth").read_bytes() == b"x"
