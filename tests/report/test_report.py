"""`bench report` on synthetic MLflow stores: tables, seeds, dashes, bad input, plots."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
from mlflow_synthetic import HARDWARE, Writer, profile_metrics
from typer.testing import CliRunner

from bench.cli import app
from bench.commands.run import parse_options
from bench.report.build import ReportBuilder, format_number
from bench.report.published import load_published
from bench.report.runs import UI_URL, read_store
from bench.tracking import FAILED

PSNR_ALL = [30.0, 30.5, 31.25]  # three seeds of RDDM on ISTD
MAE_PI, MAE_PP = [4.8, 4.9, 5.0], [4.7, 4.75, 4.8]
LPIPS_REASON = "LPIPS weights missing from weights/ (run bench weights fetch)"
RDDM_ISTD = {"sum_scale": 0.01, "objective": "res_noise", "loss": "l1"}
#: what a grid of these three seeds logs (bench.runner.grid): intervals over seeds and images
RDDM_SEED_INTERVALS = {
    "interval/istd/psnr_all_seeds_n": 3,
    "interval/istd/psnr_all_seeds_ci_low": 30.2,
    "interval/istd/psnr_all_seeds_ci_high": 31.2,
    "interval/istd/mae_all_pi_seeds_n": 3,
    "interval/istd/mae_all_pi_seeds_ci_low": 4.75,
    "interval/istd/mae_all_pi_seeds_ci_high": 5.05,
}
#: the gaps to the input `bench run` logs (bench.comparisons): one clear, one below the input
SMOKE_GAPS = {
    "rddm": {
        "interval/istd/psnr_all_vs_identity_diff": 4.4,
        "interval/istd/psnr_all_vs_identity_ci_low": 3.9,
        "interval/istd/psnr_all_vs_identity_ci_high": 4.9,
        "interval/istd/psnr_all_vs_identity_p_holm": 0.001,
    },
    "resfusion": {
        "interval/istd/psnr_all_vs_identity_diff": -1.5,
        "interval/istd/psnr_all_vs_identity_ci_low": -2.0,
        "interval/istd/psnr_all_vs_identity_ci_high": -1.0,
        "interval/istd/psnr_all_vs_identity_p_holm": 0.001,
        "interval/istd/psnr_all_vs_best_diff": -5.9,
        "interval/istd/psnr_all_vs_best_ci_low": -6.6,
        "interval/istd/psnr_all_vs_best_ci_high": -5.2,
        "interval/istd/psnr_all_vs_best_p_holm": 0.002,
    },
}
#: one run's interval over images
LOL_INTERVAL = {"interval/lol/psnr_ci_low": 17.5, "interval/lol/psnr_ci_high": 18.7}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'results' / 'mlflow.db'}"
    writer = Writer(uri, "synthetic")
    ids: dict[str, object] = {}
    parent = writer.grid("istd")
    ids["rddm"] = [
        writer.cell(
            parent, "rddm", "istd", "istd", seed=seed, options=RDDM_ISTD,
            metrics={
                "istd/psnr_all": psnr, "istd/psnr_s": psnr + 6, "istd/ssim_all": 0.95,
                "istd/mae_all_pi": pi, "istd/mae_all_pp": pp,
                **profile_metrics("rddm", 5, 0.25), **RDDM_SEED_INTERVALS,
            },
            unavailable={"istd/lpips": LPIPS_REASON},
            loss=[(1, 0.5 - 0.1 * seed), (2, 0.3), (3, 0.2)],
        )
        for seed, psnr, pi, pp in zip(range(3), PSNR_ALL, MAE_PI, MAE_PP, strict=True)
    ]  # fmt: skip
    ids["subset"] = writer.cell(  # the same settings, scored on 64 of 540 images only
        parent, "rddm", "istd", "istd", seed=3, options=RDDM_ISTD,
        metrics={"istd/psnr_all": 99.0}, tags={"eval_images": "64/540", "eval_subset": "yes"},
    )  # fmt: skip
    ids["sr3"] = writer.cell(
        parent, "sr3", "istd", "istd", steps=100, options={"loss": "l1"},
        metrics={"istd/psnr_all": 25.0, **profile_metrics("sr3", 100, 0.5)},
    )  # fmt: skip
    ids["resfusion"] = writer.cell(  # its audit logs istd-origin: Table 1's original rows
        parent, "resfusion", "istd", "istd", steps=5,
        metrics={"istd/psnr_all": 31.5, "istd/mae_all_pi": 4.9,
                 "audit/istd-origin/psnr_all": 30.25, "audit/istd-origin/mae_s_pi": 7.2},
    )  # fmt: skip
    writer.cell(parent, "identity", "istd", "istd", metrics={"istd/psnr_all": 20.0},
                tags={"run_kind": "identity"})  # fmt: skip
    smoke = writer.grid("synth-shadow", "smoke")
    for method, steps in (("rddm", 5), ("resfusion", 5), ("sr3", 100)):
        gap = SMOKE_GAPS.get(method, {})
        writer.cell(
            smoke, method, "synth-shadow", "istd", profile="smoke", steps=steps,
            iterations=400, image_size=64, unet_dim=16,
            metrics={"istd/psnr_all": 22.0, **profile_metrics(method, steps, 0.01), **gap},
            loss=[(i, 1.0 / i) for i in range(1, 6)],
        )  # fmt: skip
    writer.cell(smoke, "identity", "synth-shadow", "istd", profile="smoke",
                metrics={"istd/psnr_all": 17.6}, tags={"run_kind": "identity"})  # fmt: skip
    ids["lol"] = writer.cell(
        None, "rddm-sm-res", "lol", "lol", profile="smoke", steps=2, iterations=400,
        options={"sum_scale": 1.0},
        metrics={"lol/psnr": 18.123, "lol/ssim": 0.7, **LOL_INTERVAL},
    )  # fmt: skip
    ids["old"] = writer.bare({"method": "rddm", "dataset": "istd"}, {"istd/psnr_all": 29.0})
    ids["failed"] = writer.cell(
        parent, "rddm", "gopro", "gopro", steps=2, status=FAILED,
        tags={"error": "RuntimeError: out of memory"},
    )  # fmt: skip
    Writer(uri, "empty")
    config = root / "bench.toml"
    config.write_text(f'[tracking]\nuri = "{uri}"\nexperiment = "synthetic"\n')
    return root, config, ids


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), terminal_width=200)


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    """The report written twice into two folders, for the determinism test."""
    root, config, ids = store
    folders = [tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")]
    results = [
        invoke("report", "--config", str(config), "--out", str(f), "--all-tables") for f in folders
    ]
    for result in results:
        assert result.exit_code == 0, result.output
    return folders, (folders[0] / "report.md").read_text(encoding="utf-8"), ids


def section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def row(text: str, label: str) -> list[str]:
    """A table row's cells by its label (the first cell)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if cells[0] == label:
            return cells
    raise AssertionError(f"no row '{label}'")


def footnote(text: str, cell: str) -> str:
    number = re.search(r"\[\^(\d+)\]$", cell).group(1)
    return re.search(rf"^\[\^{number}\]: (.*)$", text, re.M).group(1)


def test_same_runs_give_byte_identical_markdown_and_plots(report):
    folders, _, _ = report
    first, second = folders
    assert (first / "report.md").read_bytes() == (second / "report.md").read_bytes()
    plots = sorted(p.name for p in (first / "plots").iterdir())
    assert plots == ["latency.png", "loss.png", "steps.png"]
    for name in plots:
        data = (first / "plots" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and data == (second / "plots" / name).read_bytes()
        assert b"Software" not in data  # no matplotlib version stamp
    text = (first / "report.md").read_text()
    for name in plots:
        assert f"](plots/{name})" in text


def test_seeds_are_averaged_with_std_n_and_every_run_linked(report, store):
    _, text, ids = report
    table = section(text, "RDDM, CVPR 2024 Table 3(b)")
    cells = row(table, "RDDM: bench (paper)")
    header = row(table, "Method")
    psnr = cells[header.index("PSNR ALL")]
    mean, std = statistics.fmean(PSNR_ALL), statistics.stdev(PSNR_ALL)
    assert psnr.startswith(f"{mean:.2f} ± {std:.2f} (n=3)")
    note = footnote(text, psnr)
    for run_id in ids["rddm"]:
        assert f"{UI_URL}/#/experiments/" in note and f"/runs/{run_id})" in note
    assert "Protocol `istd`" in note and HARDWARE in note and "sum_scale=0.01" in note
    # PI is the printed value, PP is named beside it (protocols.md §2.1)
    mae = cells[header.index("MAE ALL")]
    assert mae.startswith(f"{statistics.fmean(MAE_PI):.2f} ± ")
    assert f"per-pixel (PP): ALL {statistics.fmean(MAE_PP):.2f}" in footnote(text, mae)
    # Δ = measured − published, at the paper's precision
    delta = row(table, "RDDM: Δ bench − paper")
    assert delta[header.index("PSNR ALL")].startswith(f"{mean - 30.91:+.2f} (")
    assert delta[header.index("MAE ALL")].startswith(f"{statistics.fmean(MAE_PI) - 4.67:+.2f} (")


def test_reproduction_verdicts_place_the_paper_in_the_measured_interval(report):
    """Published RDDM ISTD values: PSNR 30.91 inside [30.2, 31.2], MAE 4.67 below [4.75,
    5.05] (so the measurement is above it); LOL's published PSNR against [17.5, 18.7]."""
    _, text, _ = report
    table = section(text, "RDDM, CVPR 2024 Table 3(b)")
    header, delta = row(table, "Method"), row(table, "RDDM: Δ bench − paper")
    psnr = delta[header.index("PSNR ALL")]
    assert psnr.startswith(f"{statistics.fmean(PSNR_ALL) - 30.91:+.2f} (consistent[^")
    assert "treats its number as exact" in footnote(text, psnr.rstrip(")"))
    mae = delta[header.index("MAE ALL")]
    assert f"(measured above: the paper's value is {4.75 - 4.67:.2f} outside [4.75, 5.05]" in mae
    # one seed: its interval over images
    lol = section(text, "RDDM, CVPR 2024 Table 3(c)")
    header, lol_delta = row(lol, "Method"), row(lol, "RDDM: Δ bench − paper")
    cell = lol_delta[header.index("PSNR")]
    published = 18.123 - float(cell.split()[0])
    if 17.5 <= published <= 18.7:
        assert "(consistent" in cell
    else:
        side = "above" if published < 17.5 else "below"
        assert f"(measured {side}: the paper's value is" in cell


def test_one_seed_links_the_cell_to_its_run(report):
    _, text, ids = report
    table = section(text, "RDDM, CVPR 2024 Table 3(c)")
    header, cells = row(table, "Method"), row(table, "RDDM: bench (smoke)")
    assert cells[header.index("PSNR")].startswith(f"[18.123]({UI_URL}/#/experiments/")
    assert f"/runs/{ids['lol']})" in cells[header.index("PSNR")]
    # the smoke run is labelled as such and there is no paper-profile row for it
    assert "RDDM: bench (paper)" not in table


def test_unavailable_metric_shows_its_reason_never_zero(report):
    _, text, _ = report
    table = section(text, "RDDM, CVPR 2024 Table 7")
    header, cells = row(table, "Method"), row(table, "RDDM: bench (paper)")
    lpips = cells[header.index("LPIPS")]
    assert lpips.startswith("unavailable")
    assert LPIPS_REASON in footnote(text, lpips)


def test_cells_without_runs_show_a_dash_and_the_command(report):
    _, text, _ = report
    table = section(text, "RDDM, CVPR 2024 Table 9")
    header, cells = row(table, "Method"), row(table, "RDDM (10 steps): bench (paper)")
    psnr = cells[header.index("PSNR")]
    assert psnr.startswith("–[^")
    expected = (
        "bench run gopro --methods rddm --profile paper --steps 10 "
        "--option objective=res_noise --option sum_scale=0.01"
    )
    assert footnote(text, psnr) == f"Not run yet: `{expected}`"
    # published rows are printed unchanged beside it
    assert row(table, "RDDM (10 steps)")[1:] == ["31.67", "0.950", "0.0379"]
    # a failed run counts nowhere but is listed with its error
    failed = section(text, "Runs that did not finish")
    assert "RuntimeError: out of memory" in failed and "FAILED" in failed


def test_table_11_lists_rddm_resfusion_and_sr3_with_both_counts_and_latency(report):
    _, text, _ = report
    table = section(text, "Table 11 beside bench")
    header = row(table, "Method")
    for method, steps in (("rddm", 5), ("resfusion", 5), ("sr3", 100)):
        line = next(
            line for line in table.splitlines() if f"| `{method}` | `synth-shadow` |" in line
        )
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        expected = profile_metrics(method, steps, 0.01)
        for column, key, decimals in [
            ("Params THOP (M)", "profile/params_thop_m", 2),
            ("Params audited (M)", "profile/params_m", 2),
            ("Latency/image (s)", "profile/latency_image_s", 3),
        ]:
            assert cells[header.index(column)] == format_number(expected[key], decimals, True)
        assert cells[header.index("Hardware")] == HARDWARE
    # the paper's THOP count is named beside, from the first matching row of Table 11(b)
    sr3 = next(line for line in table.splitlines() if "| `sr3` | `istd` |" in line)
    assert "155.29 M, 155.3 G/step (RDDM, CVPR 2024 Table 11(b): SR3 (80k))" in sr3
    # and Table 11(b)'s SR3 (80k) row is filled by the 80k-iteration paper run only
    mirrored = section(text, "RDDM, CVPR 2024 Table 11(b)")
    header, cells = row(mirrored, "Method"), row(mirrored, "SR3 (80k): bench (paper)")
    assert cells[header.index("PSNR")].startswith("[25.00]")
    assert cells[header.index("Params (M)")].startswith("[155.29]")
    assert cells[header.index("Time (s)")].startswith("[0.50]")
    assert row(mirrored, "SR3 (500k): bench (paper)")[header.index("PSNR")].startswith("–[^")


def test_latency_below_the_printed_precision_keeps_two_significant_digits():
    assert format_number(0.0012345, 2, significant=True) == "0.0012"
    assert format_number(12.345, 2, significant=True) == "12.35"
    assert format_number(0.0012345, 2) == "0.00"


def test_runs_with_missing_fields_are_listed_not_fatal(report):
    _, text, ids = report
    loose = section(text, "Runs in no table")
    line = next(line for line in loose.splitlines() if ids["old"][:8] in line)
    assert "profile, cell.steps, cell.iterations, cell.image_size" in line


def test_unknown_experiment_fails_listing_the_existing_ones(store):
    _, config, _ = store
    result = invoke("report", "--config", str(config), "--experiment", "nope")
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "experiment 'nope' does not exist" in message
    assert "existing experiments: Default, empty, synthetic" in message


def test_missing_store_is_a_clear_error(tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(f'[tracking]\nuri = "sqlite:///{tmp_path}/none/mlflow.db"\n')
    result = invoke("report", "--config", str(config))
    assert result.exit_code == 1
    assert "no tracking store at" in " ".join(result.output.split())
    assert not (tmp_path / "none").exists()  # reading never creates a store


def test_empty_experiment_gives_the_all_dash_report(store):
    root, config, _ = store
    result = invoke(
        "report", "--config", str(config), "--experiment", "empty", "--json", "--all-tables"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    text = Path(data["report"]).read_text()
    assert Path(data["report"]) == root / "reports" / "empty" / "report.md"
    assert data["plots"] == [] and all(t["filled_any"] == 0 for t in data["tables"])
    assert "No runs in this experiment yet" in text
    assert "has no runs" in " ".join(result.stderr.split())
    table = section(text, "RDDM, CVPR 2024 Table 10")
    assert row(table, "β̄²_T = 1, 100 steps: bench (paper)")[1].startswith("–[^")


def test_list_shows_completeness(store):
    _, config, _ = store
    result = invoke("report", "--config", str(config), "--list", "--json")
    assert result.exit_code == 0, result.output
    done = {t["table_id"]: t for t in json.loads(result.stdout)}
    # Table 3(b) has one reproducible row, filled by the paper-profile ISTD runs
    assert done["rddm-table-3b"] == {**done["rddm-table-3b"], "slots": 1, "filled_paper": 1}
    # Table 3(c)'s RDDM row is filled by a smoke run only
    assert (done["rddm-table-3c"]["filled_paper"], done["rddm-table-3c"]["filled_any"]) == (0, 1)
    assert (done["rddm-table-10"]["slots"], done["rddm-table-10"]["filled_any"]) == (10, 1)
    assert done["rddm-table-11b"]["slots"] == 5
    listed = invoke("report", "--config", str(config), "--list", "--experiment", "nope")
    assert listed.exit_code == 0 and "does not exist" in " ".join(listed.output.split())


def test_report_builder_needs_no_cli(store):
    """The library path: read_store + ReportBuilder gives the same Markdown as the CLI."""
    root, _, _ = store
    uri = f"sqlite:///{root / 'results' / 'mlflow.db'}"
    builder = ReportBuilder(read_store(uri, "synthetic"), load_published())
    text = builder.markdown()
    assert text == ReportBuilder(read_store(uri, "synthetic")).markdown()
    assert "## Plots" not in text  # none passed in


def test_planned_command_options_parse_back_to_the_plan():
    """What the dash footnote prints is what `bench run --option` reads."""
    from bench.report.reproduce import command, table_plan

    for planned in table_plan("rddm-table-2"):
        words = command(planned).split()
        options = [words[i + 1] for i, w in enumerate(words) if w == "--option"]
        assert parse_options(options) == planned.options


def test_measured_runs_come_first_beside_their_identity_baseline(report):
    """A smoke run shows in the report right after `bench run`, with the input's score."""
    _, text, _ = report
    measured = section(text, "Measured runs")
    smoke = measured[measured.index("### synth-shadow, smoke profile (protocol istd)") :]
    smoke = smoke[: smoke.find("\n### ", 1) if "\n### " in smoke[1:] else None]
    header = next(line for line in smoke.splitlines() if line.startswith("| Run"))
    column = [c.strip() for c in header.strip("|").split("|")].index("psnr_all")
    rows = {
        cells[1]: cells
        for line in smoke.splitlines()
        if line.startswith("| [")
        for cells in [[c.strip() for c in line.strip().strip("|").split("|")]]
    }
    assert rows["identity (input)"][column] == "17.60"  # one format for every number
    assert {rows[m][column] for m in ("rddm", "resfusion", "sr3")} == {"22.00"}
    # the headlines first, in the protocol's order, as `bench run` prints them
    paper = measured[measured.index("### istd, paper profile") :]
    names = next(line for line in paper.splitlines() if line.startswith("| Run")).split("|")
    names = [c.strip() for c in names]
    order = [names.index(n) for n in ("psnr_all", "ssim_all", "mae_all_pi", "mae_all_pp")]
    assert order == sorted(order) and names.index("mae_all_pi") < names.index("psnr_s")
    assert rows["rddm"][3] == "400" and rows["sr3"][4] == "100" and rows["rddm"][5] == "fp32"


def test_a_subset_run_is_marked_and_never_fills_a_paper_cell(report):
    _, text, ids = report
    measured = section(text, "Measured runs")
    tables = text[text.index("## Paper tables") : text.index("## Measured runs")]
    assert "64/540 (subset)" in measured and "| 99.00 |" in measured
    assert ids["subset"] not in tables and "| 99.0" not in tables  # the seeds 0-2 mean only


def test_measured_runs_show_the_gap_to_the_input_with_its_interval(report):
    _, text, _ = report
    measured = section(text, "Measured runs")
    smoke = measured[measured.index("### synth-shadow, smoke profile") :]
    header = row(smoke, "Run")
    column = header.index("Δ input psnr_all [95% CI]")
    cells = {line[1]: line for line in (row_cells(smoke, m) for m in ("rddm", "resfusion", "sr3"))}
    flags = header.index("flags")
    assert cells["rddm"][column] == "+4.40 [+3.90, +4.90]" and cells["rddm"][flags] == "best"
    assert cells["resfusion"][column + 1] == "-5.90 [-6.60, -5.20]"
    assert cells["resfusion"][flags] == "worse than the input"
    assert cells["sr3"][column] == ""  # logged no interval: left blank, not invented


def row_cells(text: str, method: str) -> list[str]:
    """The first table row whose second cell is ``method``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) > 1 and cells[1] == method:
            return cells
    raise AssertionError(f"no row for {method}")


def test_audit_moves_are_measured_against_the_gap_interval():
    """A run's audit rows with its logged gap to the input: each convention's PSNR move over
    the half-width of that interval, worked by hand."""
    from bench.audit import audit_rows, markdown
    from bench.report.measured import gap_yardstick
    from bench.report.runs import TrackedRun

    summaries = {"istd": {"psnr_all": 30.0}, "istd-origin": {"psnr_all": 30.9}}
    rows = audit_rows("istd", summaries)
    metrics = {
        "interval/istd/psnr_all_vs_identity_diff": 1.3,
        "interval/istd/psnr_all_vs_identity_ci_low": 0.8,
        "interval/istd/psnr_all_vs_identity_ci_high": 1.8,
    }
    run = TrackedRun("r", "0", "FINISHED", {"protocol": "istd"}, {}, metrics)
    yardstick = gap_yardstick(run, "PSNR", "psnr_all")
    assert yardstick.half_width == pytest.approx(0.5)
    assert "gap to the input, with its 95% interval, is +1.30 [+0.80, +1.80]" in yardstick.label
    table = markdown(rows, yardstick)
    assert "PSNR move ÷ interval half-width" in table.splitlines()[0]
    origin = next(line for line in table.splitlines() if "`istd-origin`" in line)
    assert origin.rstrip(" |").endswith(f"{0.9 / 0.5:.2f}×")
    missing = TrackedRun("r", "0", "FINISHED", {"protocol": "istd"}, {}, {})
    assert gap_yardstick(missing, "PSNR", "psnr_all") is None


def test_the_report_carries_no_notes_meant_for_developers(report):
    _, text, _ = report
    for leak in ("find_cells", "include_unverified", "Do not hard-code", "published-tables.md",
                 "Page unknown: the paper text"):  # fmt: skip
        assert leak not in text, leak
    assert "Source: main text, Section 6 (experiments) (page not known)." in text


def test_a_resumed_run_names_the_run_it_continued():
    from bench.report.runs import Store, TrackedRun

    killed = TrackedRun("a" * 32, "1", "KILLED", {"run_kind": "cell"}, {}, {})
    resumed = TrackedRun(
        "b" * 32, "1", "FINISHED",
        {"run_kind": "cell", "seed": "0", "resumed_from_run": "a" * 32,
         "resumed_from_iteration": "4"}, {}, {},
    )  # fmt: skip
    builder = ReportBuilder(Store("sqlite:///x.db", "e", "1", [killed, resumed]))
    text = builder.continued(resumed)
    assert text.startswith("seed 0 resumed at iteration 4 the training of run [aaaaaaaa](")
    gone = TrackedRun("c" * 32, "1", "FINISHED", {"resumed_from_run": "d" * 32}, {}, {})
    assert builder.continued(gone).endswith("the training of run dddddddd")


def test_the_report_opens_with_a_summary_and_prints_only_measured_tables(store, report, tmp_path):
    """A reader wants each dataset's methods with their numbers and intervals first; paper
    tables with no measured cell are listed with their command, not printed as dashes."""
    _, config, ids = store
    result = invoke("report", "--config", str(config), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    _, full, _ = report
    assert len(text.splitlines()) < len(full.splitlines())
    order = [text.index(f"\n## {name}\n") for name in ("Summary", "Paper tables", "Measured runs")]
    assert order == sorted(order)
    summary = section(text, "Summary")
    istd = summary[summary.index("### istd, paper profile") :]
    header = row(istd, "Method")
    rddm = row(istd, "rddm")  # three seeds: the mean and the seeds' interval
    assert rddm[header.index("Seeds")] == "0,1,2"
    low = RDDM_SEED_INTERVALS["interval/istd/psnr_all_seeds_ci_low"]
    high = RDDM_SEED_INTERVALS["interval/istd/psnr_all_seeds_ci_high"]
    assert (
        rddm[header.index("psnr_all")]
        == f"{statistics.fmean(PSNR_ALL):.2f} [{low:.2f}, {high:.2f}]"
    )
    tables = section(text, "Paper tables")
    # a measured table is printed and linked from the list; an unmeasured one is listed only
    assert "\n## RDDM, CVPR 2024 Table 3(b)" in text
    assert (
        "[RDDM, CVPR 2024 Table 3(b): Shadow removal on ISTD](#rddm-cvpr-2024-table-3b-shadow-removal-on-istd)"
        in tables
    )
    assert "\n## RDDM, CVPR 2024 Table 2:" not in text
    assert "`bench run --table rddm-table-2`" in tables and "--all-tables" in tables


def test_doc_references_become_links_to_their_sections(tmp_path):
    from bench.report.common import link_doc_references

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "protocols.md").write_text("# P\n## 2. Papers\n### 2.1 ISTD\ntext\n")
    text = "see docs/protocols.md §2.1, protocols.md §2, `docs/protocols.md` and methods.md §5"
    linked = link_doc_references(text, docs, "../../docs")
    assert linked == (
        "see [docs/protocols.md §2.1](../../docs/protocols.md#21-istd), "
        "[protocols.md §2](../../docs/protocols.md#2-papers), `docs/protocols.md` and "
        "methods.md §5"  # no such page here: left as written
    )
    assert link_doc_references(text, None, "x") == text


def test_every_section_reference_in_the_project_resolves():
    """Every reference to a numbered section of the docs names a section that exists."""
    from bench.report.common import DOC_REFERENCE, section_heading

    root = Path(__file__).resolve().parents[2]
    files = [root / "README.md", *root.glob("docs/*.md"), *root.glob("reports/published/*.toml")]
    files += [
        *root.glob("bench/**/*.py"),
        *root.glob("baselines/**/*.py"),
        *root.glob("tests/**/*.py"),
    ]
    dangling = []
    for path in files:
        for found in DOC_REFERENCE.finditer(path.read_text(encoding="utf-8").replace("`", "")):
            page, number = found[1], found[2]
            document = root / "docs" / f"{page}.md"
            if not document.is_file():
                continue  # another project's file (README.md of a dataset, ...)
            if number and section_heading(document, number) is None:
                dangling.append(f"{path.relative_to(root)}: {found[0]}")
    assert dangling == []


def test_resfusion_table_1_reads_each_resolution_from_its_protocol(report):
    """256x256 rows compare with the run's istd result; the original-resolution rows with
    the istd-origin values its audit logged."""
    _, text, ids = report
    table = section(text, "Resfusion, NeurIPS 2024 Table 1:")
    header = row(table, "Method")
    at_256 = row(table, "Resfusion (ours): bench (paper)")
    assert at_256[header.index("PSNR ALL")].startswith("[31.50](")
    assert at_256[header.index("MAE ALL")].startswith("[4.90](")
    original = row(table, "Resfusion (ours), original: bench (paper)")
    assert original[header.index("PSNR ALL")].startswith("[30.25](")
    assert original[header.index("MAE S")].startswith("[7.20](")
    delta = row(table, "Resfusion (ours), original: Δ bench − paper")
    assert delta[header.index("PSNR ALL")] == f"{30.25 - 30.09:+.2f}"  # no interval logged
    assert "Source: main text, Section 3 (experiments), camera-ready (page 5)" in table
    assert "`bench run --table resfusion-table-1`" in text


def test_sr3_readme_table_shows_a_measured_sr3_run_beside_the_official_numbers(tmp_path):
    """A paper-profile SR3 run on sr3-faces-16-128 (2000 steps, protocol sr3-faces) fills the
    16->128 cells of SR3's official README table; the 64->512 cells stay unmeasured."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = Writer(uri, "sr")
    parent = writer.grid("sr3-faces-16-128")
    metrics = {"sr3-faces/psnr": 23.1234, "sr3-faces/ssim": 0.6612, "sr3-faces/consistency": 2.1e-5}  # fmt: skip
    writer.cell(parent, "sr3", "sr3-faces-16-128", "sr3-faces", steps=2000, iterations=1_000_000, metrics=metrics)  # fmt: skip
    text = ReportBuilder(read_store(uri, "sr"), load_published(), all_tables=True).markdown()
    section = text[text.index("SR3 face super-resolution") :]
    row = next(line for line in section.splitlines() if line.startswith("| SR3 (official"))
    assert "23.26" in row and "0.675" in row and "19.87" in row
    assert "23.12" in section and "0.661" in section
