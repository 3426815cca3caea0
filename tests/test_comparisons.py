"""`bench compare` on folders and on tracked runs; the run table's intervals and flags.

The per-image PSNR the comparison pairs is recomputed here with scikit-image, and the
interval and p-values with scipy on those differences."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from scipy import stats
from skimage.metrics import peak_signal_noise_ratio
from typer.testing import CliRunner

from bench.cli import app
from bench.comparisons import compare_grid, output_difference
from bench.protocols import get_protocol


def _write(folder: Path, images: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Ground truth and two restorations of it: A with less noise than B on most images."""
    root = tmp_path_factory.mktemp("folders")
    rng = np.random.default_rng(4)
    gt = {f"img{i:02d}": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for i in range(16)}

    def noisy(scale_for):
        out = {}
        for i, (name, image) in enumerate(gt.items()):
            noise = rng.normal(0, scale_for(i), image.shape)
            out[name] = np.clip(image + noise, 0, 255).round().astype(np.uint8)
        return out

    a = noisy(lambda i: 6.0 if i % 5 else 14.0)  # every fifth image: A worse than B
    b = noisy(lambda i: 10.0)
    return (
        _write(root / "gt", gt),
        _write(root / "a", a),
        _write(root / "b", b),
        root,
    )


def _compare(*args, config=None) -> dict:
    options = ["--config", str(config)] if config else []
    result = CliRunner().invoke(app, ["compare", *map(str, args), *options, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_folders_are_compared_image_by_image(folders, tmp_path):
    gt, a, b, _ = folders
    record = _compare(a, b, "--gt", gt, "--protocol", "rgb", "--resamples", "2000")
    psnr = record["metrics"]["psnr"]
    names = sorted(p.stem for p in gt.glob("*.png"))

    def per_image(folder):
        return np.array([
            peak_signal_noise_ratio(
                np.asarray(Image.open(gt / f"{n}.png")), np.asarray(Image.open(folder / f"{n}.png")),
                data_range=255,
            )
            for n in names
        ])  # fmt: skip

    d = per_image(a) - per_image(b)
    assert psnr["mean_diff"] == pytest.approx(d.mean(), abs=1e-6)
    assert psnr["n_images"] == 16 and psnr["a_wins"] == int((d > 0).sum())
    assert psnr["p_wilcoxon"] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-6)
    reference = stats.bootstrap((d,), np.mean, n_resamples=2000, rng=np.random.default_rng(0))
    assert (psnr["ci_low"], psnr["ci_high"]) == pytest.approx(
        tuple(reference.confidence_interval), abs=0.05
    )
    assert record["settings"]["resamples"] == 2000 and record["settings"]["method"] == "BCa"
    # LPIPS has no weights here: said, not dropped
    assert "no per-image values" in record["metrics"]["lpips"]["note"]
    assert record["outputs"]["bit_identical"] is False
    assert record["outputs"]["identical_images"] == 0


def test_a_folder_against_its_copy_is_bit_identical(folders, tmp_path):
    gt, a, _, _ = folders
    copy = shutil.copytree(a, tmp_path / "copy")
    record = _compare(a, copy, "--gt", gt, "--protocol", "rgb", "--resamples", "200")
    assert record["outputs"]["bit_identical"] is True
    assert record["metrics"]["psnr"]["mean_diff"] == 0
    assert record["metrics"]["psnr"]["p_permutation"] is None


def test_output_difference_counts_pixels_and_names_the_worst(tmp_path):
    base = np.zeros((4, 4, 3), np.uint8)
    changed = base.copy()
    changed[0, 0, 0] = 7
    a = _write(tmp_path / "a", {"x": base, "y": base})
    b = _write(tmp_path / "b", {"x": base, "y": changed})
    diff = output_difference({n: a / f"{n}.png" for n in "xy"}, {n: b / f"{n}.png" for n in "xy"})
    assert diff.identical == 1 and diff.max_abs_diff == 7 and diff.worst == "y"
    assert diff.differing_pixels == pytest.approx(1 / 96)
    assert diff.mean_abs_diff == pytest.approx(7 / 96)
    assert diff.worst_psnr == pytest.approx(10 * np.log10(255**2 / (49 / 48)))


def test_bad_invocations_say_what_to_do(folders):
    gt, a, _, _ = folders
    result = CliRunner().invoke(app, ["compare", str(a), "nonexistent-run"])
    assert result.exit_code == 2 and "is a folder but" in result.output
    result = CliRunner().invoke(app, ["compare", str(a), str(a)])
    assert result.exit_code == 2 and "needs --gt DIR and --protocol" in result.output


def test_grid_comparison_flags_worse_than_input_and_holm(folders):
    """Three cells and the input on one seed: the interval flags and Holm's adjustment."""
    import pandas as pd

    rng = np.random.default_rng(0)
    names = [f"i{k}" for k in range(20)]
    identity = pd.DataFrame({"name": names, "psnr": rng.normal(20, 1, 20)})
    good = identity.assign(psnr=identity.psnr + 2 + rng.normal(0, 0.2, 20))
    tied = good.assign(psnr=good.psnr + rng.normal(0, 0.2, 20))  # indistinguishable from good
    bad = identity.assign(psnr=identity.psnr - 1 + rng.normal(0, 0.2, 20))
    protocol = get_protocol("rgb", Path("unused"))
    out = compare_grid({0: good, 1: tied, 2: bad}, {0: 0, 1: 0, 2: 0}, identity, protocol)
    best = 0 if good.psnr.mean() >= tied.psnr.mean() else 1
    assert out[best]["psnr"].is_best and "best" in out[best]["psnr"].flags
    assert "not significant vs best" in out[1 - best]["psnr"].flags
    assert out[2]["psnr"].worse_than_input and "worse than the input" in out[2]["psnr"].flags
    # Holm over the two comparisons with the best: the smaller p doubled
    p = sorted(out[i]["psnr"].vs_best.p_permutation for i in (1 - best, 2))
    assert out[2]["psnr"].vs_best_p_holm == pytest.approx(min(1, 2 * p[0]))
    logged = out[2]["psnr"].logged()
    assert logged["psnr_vs_identity_ci_high"] < 0 and "psnr_ci_low" in logged


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    from runner.test_run import short_config

    root = tmp_path_factory.mktemp("tracked")
    config = short_config(root)
    result = CliRunner().invoke(
        app, ["run", "-c", str(config), "-m", "rddm,sr3", "--seeds", "0,1"], terminal_width=250
    )
    assert result.exit_code == 0, result.output
    client = MlflowClient(f"sqlite:///{root / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    runs = client.search_runs([experiment.experiment_id])
    by = {(r.data.tags.get("method"), r.data.params.get("cell.seed")): r for r in runs}
    return config, by, result.output


def test_run_table_shows_intervals_flags_and_seed_spread(tracked):
    _, by, output = tracked
    text = " ".join(output.split())
    assert "Δ input [95% CI]" in text and "Δ best [95% CI]" in text and "flags" in text
    assert re.search(r"a pipeline check \([\d, ]+ training iterations\), not a reproduction", text)
    assert "Holm-adjusted" in text
    assert "rddm psnr_all over 2 seeds" in text and "interval over seeds and images" in text
    # where the outputs are, with a folder that holds them
    shown = re.search(r"\(e\.g\. (\S+/samples)\)", text).group(1)
    assert Path(shown).is_dir() and any(Path(shown).glob("*.png"))
    rddm = by[("rddm", "0")].data.metrics
    for suffix in ("ci_low", "ci_high", "vs_identity_ci_low", "vs_identity_ci_high",
                   "vs_identity_p_holm", "seeds_std", "seeds_ci_low"):  # fmt: skip
        assert f"interval/istd/psnr_all_{suffix}" in rddm
    low, high = rddm["interval/istd/psnr_all_ci_low"], rddm["interval/istd/psnr_all_ci_high"]
    assert low <= rddm["istd/psnr_all"] <= high
    identity = by[("identity", None)].data.metrics["istd/psnr_all"]
    assert rddm["interval/istd/psnr_all_vs_identity_diff"] == pytest.approx(
        rddm["istd/psnr_all"] - identity, abs=1e-9
    )


def test_compare_two_runs_and_a_run_with_itself(tracked):
    config, by, _ = tracked
    rddm, sr3 = by[("rddm", "0")], by[("sr3", "0")]
    record = _compare(rddm.info.run_id, sr3.info.run_id, "--resamples", "500", config=config)
    difference = rddm.data.metrics["istd/psnr_all"] - sr3.data.metrics["istd/psnr_all"]
    assert record["metrics"]["psnr_all"]["mean_diff"] == pytest.approx(difference, abs=1e-9)
    assert set(record["metrics"]) >= {"psnr_all", "ssim_all", "mae_all_pi", "mae_all_pp"}
    assert record["metrics"]["mae_all_pp"]["p_wilcoxon"] is None  # a ratio of sums
    assert record["hardware"]["a"]["cpu"]  # every run records where it ran
    same = _compare(rddm.info.run_id, rddm.info.run_id, "--resamples", "200", config=config)
    assert same["outputs"]["bit_identical"] is True
    assert same["outputs"]["n_images"] == 3
    identity = by[("identity", None)].info.run_id
    against = _compare(rddm.info.run_id, identity, "--resamples", "200", config=config)
    assert against["metrics"]["psnr_all"]["mean_diff"] == pytest.approx(
        rddm.data.metrics["interval/istd/psnr_all_vs_identity_diff"], abs=1e-9
    )


def test_the_native_size_samples_reproduce_the_runs_native_scores(tracked):
    """The predictions saved at the files' size give, under bench score, what the run logged
    for the conventions that score at native size (istd-origin: no imresize), which the
    loader-size samples cannot be scored under."""
    config, by, _ = tracked
    run = by[("rddm", "0")]
    native = Path(run.data.tags["samples_native_dir"])
    root = config.parent / "data" / "synth-shadow" / "test"
    scored = sorted(p.stem for p in native.glob("*.png"))
    gt, mask = config.parent / "subset-gt", config.parent / "subset-mask"
    for folder, source in ((gt, root / "test_C"), (mask, root / "test_B")):
        folder.mkdir(exist_ok=True)
        for stem in scored:
            (folder / f"{stem}.png").write_bytes((source / f"{stem}.png").read_bytes())
    for stem in scored:  # the files' own size, not the loader's
        assert Image.open(native / f"{stem}.png").size == Image.open(gt / f"{stem}.png").size
    result = CliRunner().invoke(
        app, ["score", str(native), str(gt), "--mask-dir", str(mask), "-p", "istd", "--audit",
              "--json", "-c", str(config)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {row["protocol"]: row for row in json.loads(result.stdout)["rows"]}
    logged = run.data.metrics["audit/istd-origin/psnr"]
    assert rows["istd-origin"]["values"]["PSNR"] == pytest.approx(logged, abs=1e-9)


def test_a_runs_folder_reproduces_its_whole_audit(tracked):
    """One folder, the run's, gives every convention of the run's audit: those that resize
    read samples/ (the networks' size), those at the files' size samples_native/."""
    from bench.audit import rows_from_metrics

    config, by, _ = tracked
    run = by[("rddm", "0")]
    folder = Path(run.data.tags["samples_dir"]).parent
    gt, mask = config.parent / "subset-gt", config.parent / "subset-mask"
    root = config.parent / "data" / "synth-shadow" / "test"
    for target, source in ((gt, root / "test_C"), (mask, root / "test_B")):
        target.mkdir(exist_ok=True)
        for path in (folder / "samples").glob("*.png"):
            (target / path.name).write_bytes((source / path.name).read_bytes())
    result = CliRunner().invoke(
        app, ["score", str(folder), str(gt), "--mask-dir", str(mask), "-p", "istd", "--audit",
              "--json", "-c", str(config)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = {row["protocol"]: row["values"] for row in json.loads(result.stdout)["rows"]}
    logged = {row.protocol: row.values for row in rows_from_metrics("istd", run.data.metrics)}
    assert set(logged) == set(scored) and len(logged) > 5
    for protocol, values in logged.items():
        for title, value in values.items():
            if value is not None and math.isfinite(value):
                assert scored[protocol][title] == pytest.approx(value, abs=1e-9), (protocol, title)
