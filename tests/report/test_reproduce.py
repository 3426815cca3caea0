"""The plans behind `bench run --table` and the commands in the report's dash cells."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.commands import run as run_command
from bench.errors import UsageError
from bench.report.published import load_published
from bench.report.reproduce import REPORTED, PlannedRun, command, table_plan

#: registry names the runner records (baselines/__init__.py) and datasets/*.toml names
METHOD_NAMES = {
    "rddm", "rddm-sm-res", "rddm-sm-n", "rddm-1net", "rddm-shared-encoder", "rddm-aosa",
    "resfusion", "sr3", "ddim",
}  # fmt: skip
DATASET_NAMES = {
    "istd",
    "lol",
    "sid-rgb",
    "raindrop",
    "gopro",
    "celeba",
    "cifar10",
    "lol-v2-real",
    "sr3-faces-16-128",
    "sr3-faces-64-512",
}


@pytest.fixture(scope="module")
def tables():
    return load_published()


def test_every_reported_table_has_a_plan_of_known_names(tables):
    for table_id in REPORTED:
        plan = table_plan(table_id, tables)
        assert plan, table_id
        for planned in plan:
            assert set(planned.methods) <= METHOD_NAMES, (table_id, planned)
            assert planned.dataset in DATASET_NAMES, (table_id, planned)
            assert planned.profile == "paper"


def test_table_10_is_every_step_count_at_both_sum_scales(tables):
    plan = table_plan("rddm-table-10", tables)
    cells = {(p.steps, p.options["sum_scale"]) for p in plan}
    assert cells == {(s, b) for s in (1, 2, 5, 10, 100) for b in (0.01, 1)}
    assert len(plan) == 10
    assert all(p.methods == ("rddm",) and p.dataset == "istd" for p in plan)
    assert all(p.options["objective"] == "res_noise" for p in plan)  # SM-Res-N-2Net


def test_table_2_retrains_each_schedule(tables):
    schedules = [dict(p.options) for p in table_plan("rddm-table-2", tables)]
    assert len(schedules) == 7 and all(p["sum_scale"] == 1 for p in schedules)
    assert {s["schedule"] for s in schedules} == {
        "ddim-linear", "ddim-scaled-linear", "ddim-squared-cosine", "power",
    }  # fmt: skip
    shapes = {(s.get("alpha_shape"), s.get("beta_shape")) for s in schedules}
    assert ("decreasing", "increasing") in shapes and ("mean", "mean") in shapes


def test_table_11b_pins_sr3_iterations_and_groups_by_settings(tables):
    plan = table_plan("rddm-table-11b", tables)
    sr3 = [p for p in plan if p.methods == ("sr3",)]
    assert [(p.iterations, p.steps) for p in sr3] == [(80000, 100), (500000, 100), (1000000, 100)]
    assert all(p.options == {} for p in sr3)  # β̄²_T is RDDM's option only
    rddm = [p for p in plan if p.methods != ("sr3",)]
    assert {p.methods for p in rddm} == {("rddm-sm-res",), ("rddm",)}
    assert all(p.steps == 5 and p.options["sum_scale"] == 0.01 for p in rddm)


def test_table_5_runs_the_ablations_together(tables):
    plan = table_plan("rddm-table-5", tables)
    assert plan[0].methods == ("rddm-1net", "rddm-shared-encoder", "rddm-sm-res")


def test_unknown_table_lists_the_valid_ids(tables):
    with pytest.raises(
        UsageError, match="unknown table 'rddm-table-99'; valid tables: .*rddm-table-10"
    ):
        table_plan("rddm-table-99", tables)
    with pytest.raises(UsageError, match="unknown table 'rddm-table-4'"):
        table_plan("rddm-table-4", tables)  # training settings: nothing to measure


def test_command_is_exact():
    planned = PlannedRun(
        "istd", ("rddm", "sr3"), 5, {"sum_scale": 0.01, "objective": "res_noise"}, 80000
    )
    assert command(planned) == (
        "bench run istd --methods rddm,sr3 --profile paper --steps 5 --iters 80000 "
        "--option objective=res_noise --option sum_scale=0.01"
    )
    assert command(PlannedRun("lol", ("sr3",))) == "bench run lol --methods sr3 --profile paper"


# --- bench run --table ----------------------------------------------------------------------


@pytest.fixture
def recorded(monkeypatch):
    """Each grid `bench run --table` starts, as (dataset, methods, profile, seeds, iters,
    steps, options), instead of training; the registries are not needed for the plan."""
    calls = []

    def record(config, iters, steps, options, **invocation):
        run = config.run
        calls.append((run.dataset, run.methods, run.profile, run.seeds, iters, steps, options))
        return run.dataset == "raindrop"  # a failed cell there

    monkeypatch.setattr(run_command, "_run_grid", record)
    return calls


def test_run_table_runs_each_planned_run_through_the_normal_path(recorded):
    result = CliRunner().invoke(app, ["run", "--table", "rddm-table-9", "--seeds", "0,1"])
    assert result.exit_code == 0, result.output
    expected = [
        (p.dataset, p.methods, "paper", (0, 1), p.iterations, p.steps, p.options)
        for p in table_plan("rddm-table-9")
    ]
    assert recorded == expected
    assert [call[5] for call in recorded] == [2, 10]


def test_run_table_keeps_profile_and_iters_overrides_and_reports_failure(recorded):
    result = CliRunner().invoke(
        app, ["run", "--table", "rddm-table-11c", "--profile", "smoke", "--iters", "7"]
    )
    assert result.exit_code == 1  # a cell failed in one of the grids
    assert [(c[0], c[2], c[4]) for c in recorded] == [("raindrop", "smoke", 7)] * 2


def test_run_table_refuses_what_the_table_fixes(recorded):
    for extra in (["istd"], ["--methods", "sr3"], ["--steps", "3"], ["--option", "sum_scale=1"]):
        result = CliRunner().invoke(app, ["run", *extra, "--table", "rddm-table-10"])
        assert result.exit_code == 2, extra
        assert "--table fixes" in " ".join(result.output.split())
    unknown = CliRunner().invoke(app, ["run", "--table", "nope"])
    assert unknown.exit_code == 2 and "valid tables:" in unknown.output
    assert recorded == []


def test_every_planned_run_builds_its_methods_with_the_planned_options():
    """The options a table's plan passes (``--option``) are ones the methods accept."""
    from baselines import build_method, paper_settings
    from bench.data import get_dataset
    from bench.report.reproduce import REPORTED, table_plan

    built = 0
    for table_id in REPORTED:
        for planned in table_plan(table_id):
            spec = get_dataset(planned.dataset)
            for method in planned.methods:
                options = {
                    **paper_settings(method, spec.task).get("options", {}),
                    **planned.options,
                }
                build_method(
                    method,
                    unet_dim=8,
                    unet_mults=(1, 2),
                    mask_channels=int(spec.has_mask),
                    **options,
                )
                built += 1
    assert built >= 20
