"""Methods of your own: a file (--methods-from) and an installed package (the bench.methods
entry point) each run end to end through `bench run` and `bench report`, beside RDDM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baselines import registry
from bench.cli import app

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "residual_regressor.py"

CONFIG = """
[tracking]
experiment = "plugins"
[profiles.smoke]
image_size = 32
batch_size = 2
iterations = 4
unet_dim = 8
unet_mults = [1, 2]
eval_images = 2
eval_batch_size = 2
audit = false
"""


def _run_and_report(tmp_path: Path, methods: str, *extra: str) -> tuple[dict, str]:
    config = tmp_path / "bench.toml"
    config.write_text(CONFIG)
    runner = CliRunner()
    ran = runner.invoke(
        app, ["run", "synth-shadow", "-m", methods, "-c", str(config), "--json", *extra]
    )
    assert ran.exit_code == 0, ran.output
    reported = runner.invoke(app, ["report", "-c", str(config)])
    assert reported.exit_code == 0, reported.output
    return json.loads(ran.stdout), next((tmp_path / "reports").rglob("report.md")).read_text()


def test_a_method_file_runs_beside_the_papers_methods(tmp_path):
    record, report = _run_and_report(tmp_path, "residual-regressor", "--methods-from", str(EXAMPLE))
    cells = {c["cell"].split("/")[1]: c for c in record["cells"]}
    assert cells["residual-regressor"]["status"] == "FINISHED"
    assert "istd/psnr_all" in cells["residual-regressor"]["metrics"]
    assert "| residual-regressor | 0 |" in report.replace("](", "] (")  # in Measured runs


def test_an_installed_package_registers_through_the_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    source = EXAMPLE.read_text().replace('"residual-regressor"', '"packaged-regressor"')
    (site / "packaged_regressor.py").write_text(source)
    info = site / "packaged_regressor-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: packaged-regressor\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[bench.methods]\npackaged-regressor = packaged_regressor\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    assert "packaged-regressor" in registry.registered_names()
    record, report = _run_and_report(tmp_path, "packaged-regressor")
    assert [(c["cell"].split("/")[1], c["status"]) for c in record["cells"]] == [
        ("packaged-regressor", "FINISHED")
    ]
    assert "packaged-regressor" in report


def test_a_plugin_that_fits_no_task_or_clashes_is_one_clear_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no torch here')\n")
    config = tmp_path / "bench.toml"
    config.write_text(CONFIG)
    result = CliRunner().invoke(app, ["run", "--methods-from", str(broken), "-c", str(config)])
    assert result.exit_code == 2 and "broken.py: RuntimeError: no torch here" in result.output
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("rddm", "somewhere:Else")
    generation_only = tmp_path / "gen.py"
    generation_only.write_text(
        EXAMPLE.read_text()
        .replace('"residual-regressor"', '"gen-regressor"')
        .replace("for task in RESTORATION", 'for task in ("generation",)')
    )
    result = CliRunner().invoke(
        app,
        ["run", "-m", "gen-regressor", "--methods-from", str(generation_only), "-c", str(config)],
    )
    assert result.exit_code == 2
    assert "gen-regressor does not apply to dataset synth-shadow" in " ".join(result.output.split())
