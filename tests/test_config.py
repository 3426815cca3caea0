"""bench.toml parsing: merging, overrides, and one clear error (exit 2) per bad input."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.config import PACKAGED_DEFAULTS, load_config
from bench.errors import EXIT_USAGE, ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def test_packaged_defaults_are_the_repository_file():
    assert PACKAGED_DEFAULTS.read_text() == (REPO / "bench.toml").read_text()


def test_defaults_load_with_both_profiles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./bench.toml here: packaged defaults
    config = load_config()
    assert config.source == PACKAGED_DEFAULTS
    assert {"smoke", "paper"} <= set(config.profiles)
    assert config.profiles["paper"].image_size == 256
    assert config.profiles["paper"].batch_size == 1
    assert config.profiles["paper"].iterations == "paper"
    assert config.profiles["paper"].unet_mults == (1, 2, 4, 8)  # the papers' UNet


def test_partial_file_merges_over_defaults_and_paths_resolve_beside_it(tmp_path):
    path = write(tmp_path, '[paths]\ndata_root = "mydata"\n[profiles.smoke]\niterations = 7\n')
    config = load_config(path)
    assert config.paths.data_root == tmp_path / "mydata"
    assert config.paths.results_dir == tmp_path / "results"
    assert config.profiles["smoke"].iterations == 7
    defaults = load_config(PACKAGED_DEFAULTS).profiles["smoke"]
    assert config.profiles["smoke"].image_size == defaults.image_size  # kept from the defaults


def test_cli_overrides_win_and_none_means_unset(tmp_path):
    path = write(tmp_path, '[run]\nseeds = [1, 2]\nprofile = "smoke"\n')
    config = load_config(path, {"run": {"seeds": [5], "profile": None}})
    assert config.run.seeds == (5,)
    assert config.run.profile == "smoke"


def test_int_accepted_where_float_expected(tmp_path):
    config = load_config(write(tmp_path, "[profiles.smoke]\nlr = 1\n"))
    assert config.profiles["smoke"].lr == 1.0
    assert isinstance(config.profiles["smoke"].lr, float)


def test_method_budget_overrides_its_profile_for_that_method_only(tmp_path):
    from bench.runner.cells import expand

    path = write(
        tmp_path,
        '[run]\nmethods = ["resfusion", "rddm"]\n[profiles.smoke]\niterations = 10\nlr = 1e-3\n'
        "[profiles.smoke.methods.resfusion]\niterations_scale = 3\n"
        "[profiles.smoke.methods.rddm]\nlr_scale = 0.5\niterations_scale = 0.84\n",
    )
    config = load_config(path)
    cells = {cell.method: cell for cell in expand(config)}
    assert (cells["resfusion"].iterations, cells["resfusion"].lr) == (30, 1e-3)
    assert (cells["rddm"].iterations, cells["rddm"].lr) == (8, 5e-4)  # 8.4 rounds to 8
    assert expand(config, iterations=4)[0].iterations == 4  # --iters still wins


def test_tracking_uri_defaults_to_sqlite_in_results(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.tracking_uri() == f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"


BAD_INPUTS = {
    "typo": (
        '[run]\ndataste = "istd"\n',
        ["unknown key 'run.dataste'", "valid keys in run", "dataset"],
    ),
    "typo-table": ("[trackin]\nuri = ''\n", ["unknown key 'trackin'", "tracking"]),
    "wrong-type": ('[run]\nseeds = "0"\n', ["run.seeds must be a list", "str '0'"]),
    "wrong-item-type": ("[run]\nseeds = [0, 1.5]\n", ["run.seeds[1] must be an integer"]),
    "bool-as-int": ("[profiles.smoke]\nbatch_size = true\n", ["profiles.smoke.batch_size"]),
    "bad-literal": ('[run]\ndevice = "gpu"\n', ["run.device = 'gpu'", "auto, cpu, cuda"]),
    "bad-union": ('[profiles.smoke]\niterations = "many"\n', ["profiles.smoke.iterations must be"]),
    "unknown-profile": ('[run]\nprofile = "quick"\n', ["run.profile = 'quick'", "paper, smoke"]),
    "unknown-method": ('[run]\nmethods = ["rdm"]\n', ["'rdm'", "not a method", "valid choices"]),
    "unknown-dataset": ('[run]\ndataset = "itsd"\n', ["'itsd'", "not a dataset", "valid choices"]),
    "incomplete-profile": ("[profiles.mine]\nimage_size = 32\n", ["profiles.mine", "missing key"]),
    "not-toml": ("[run\n", ["not valid TOML"]),
    "unknown-budget-method": (
        "[profiles.smoke.methods.sr4]\niterations_scale = 5\n",
        ["profiles.smoke.methods has 'sr4'", "not a method"],
    ),
    "unknown-budget-key": (
        "[profiles.smoke.methods.sr3]\niterations = 5\n",
        ["unknown key 'profiles.smoke.methods.sr3.iterations'", "iterations_scale, lr_scale"],
    ),
    "nonpositive-scale": (
        "[profiles.smoke.methods.sr3]\nlr_scale = 0\n",
        ["profiles.smoke.methods.sr3.lr_scale = 0", "must be positive"],
    ),
    "zero-batch": (
        "[profiles.smoke]\nbatch_size = 0\n",
        ["profiles.smoke.batch_size = 0", "at least 1"],
    ),
    "negative-lr": ("[profiles.smoke]\nlr = -1.0\n", ["profiles.smoke.lr = -1.0", "positive"]),
    "zero-image-size": ("[profiles.smoke]\nimage_size = 0\n", ["profiles.smoke.image_size = 0"]),
    "ema-decay-above-one": (
        "[profiles.smoke]\nema_decay = 1.5\n",
        ["ema_decay = 1.5", "between 0 and 1"],
    ),
    "empty-seeds": ("[run]\nseeds = []\n", ["run.seeds is empty"]),
    "repeated-methods": (
        '[run]\nmethods = ["rddm", "sr3", "rddm"]\n',
        ["run.methods lists rddm more than once"],
    ),
    "scaled-paper-value": (
        '[run]\nprofile = "paper"\n[profiles.paper.methods.sr3]\niterations_scale = 2\n',
        ["profiles.paper.methods.sr3.iterations_scale = 2", "'paper'"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_config_raises_one_clear_error(tmp_path, case):
    text, fragments = BAD_INPUTS[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_config_exits_2_with_one_line(tmp_path, case):
    text, fragments = BAD_INPUTS[case]
    path = write(tmp_path, text)
    result = CliRunner().invoke(app, ["env", "--config", str(path)])
    assert result.exit_code == EXIT_USAGE
    assert "error:" in result.output
    assert fragments[0] in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert "environment" not in result.output  # nothing ran


def test_missing_config_file_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["env", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == EXIT_USAGE
    assert "nope.toml does not exist" in " ".join(result.output.split())


def test_packaged_defaults_resolve_paths_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.paths.data_root == tmp_path / "data"
    assert config.paths.weights_dir == tmp_path / "weights"


def test_values_typed_on_the_command_line_blame_the_flag_not_the_file(tmp_path):
    path = write(tmp_path, "[profiles.smoke]\niterations = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"run": {"seeds": []}})
    assert str(caught.value).startswith("--seeds: run.seeds is empty")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"run": {"dataset": "itsd"}})
    assert str(caught.value).startswith("the DATASET argument: run.dataset = 'itsd'")
    assert str(path) not in str(caught.value)


def test_a_relative_config_path_still_gives_absolute_paths(tmp_path, monkeypatch):
    """`bench run -c curves.toml`: the results folder (and every samples_dir a run tags) is
    absolute, so it stays right when the store is read from another folder."""
    write(tmp_path, '[paths]\nresults_dir = "out"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("bench.toml"))
    assert config.paths.results_dir == tmp_path / "out"
    assert config.paths.results_dir.is_absolute() and config.source.is_absolute()


def test_max_steps_caps_a_method_s_paper_steps_and_never_a_steps_flag(tmp_path):
    """SR3's super-resolution schedule has 2000 steps; a profile may sample it in fewer."""
    from bench.runner.cells import expand

    path = write(
        tmp_path,
        '[run]\ndataset = "synth-sr"\nmethods = ["sr3", "rddm"]\n[profiles.smoke]\nsteps = "paper"\n'
        "[profiles.smoke.methods.sr3]\nmax_steps = 40\n",
    )
    cells = {cell.method: cell for cell in expand(load_config(path))}
    assert (cells["sr3"].steps, cells["rddm"].steps) == (40, 5)
    assert expand(load_config(path), steps=500)[0].steps == 500  # --steps is the user's
    uncapped = write(tmp_path, '[run]\ndataset = "synth-sr"\nmethods = ["sr3"]\n[profiles.smoke]\nsteps = "paper"\n[profiles.smoke.methods.sr3]\nmax_steps = 5000\n')  # fmt: skip
    assert expand(load_config(uncapped))[0].steps == 2000
    with pytest.raises(ConfigError, match="max_steps"):
        load_config(write(tmp_path, "[profiles.smoke.methods.sr3]\nmax_steps = 0\n"))
