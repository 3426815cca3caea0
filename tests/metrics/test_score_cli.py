"""`bench score` on generated folders: results, CSV, and every bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.protocols import get_protocol


def _write(folder, name, array):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / name)


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    pred, gt, mask = tmp_path / "out" / "method", tmp_path / "gt", tmp_path / "mask"
    for i in range(3):
        clean = rng.integers(20, 230, (40, 48, 3), dtype=np.uint8)
        _write(gt, f"img{i}.png", clean)
        _write(
            pred, f"img{i}.png", np.clip(clean.astype(int) + 4 * (i + 1), 0, 255).astype(np.uint8)
        )
        shadow = np.zeros((40, 48), np.uint8)
        shadow[:, :20] = 255
        _write(mask, f"img{i}.png", shadow)
    return pred, gt, mask


def _score(config, *args):
    return CliRunner().invoke(
        app, ["score", *map(str, args), "-c", str(config)], terminal_width=200
    )


def test_rgb_scores_print_the_protocol_and_write_the_csv(folders, cli_config):
    pred, gt, _ = folders
    config, _ = cli_config
    result = _score(config, pred, gt, "--protocol", "rgb")
    assert result.exit_code == 0, result.output
    assert "protocol rgb" in result.stdout and "lpips" in result.stdout  # unavailable, shown
    (csv,) = (config.parent / "results" / "scores").glob("method-*_rgb.csv")
    assert not list(pred.parent.glob("*.csv"))  # nothing written among the user's folders
    table = pd.read_csv(csv)
    assert list(table["name"]) == ["img0", "img1", "img2"]
    # offset 4(i+1) everywhere: PSNR = 20 log10(255 / offset)
    assert np.allclose(table["psnr"], [20 * np.log10(255 / (4 * (i + 1))) for i in range(3)])


def test_istd_json_matches_the_protocol_api(folders, cli_config, tmp_path):
    pred, gt, mask = folders
    config, _ = cli_config
    csv = tmp_path / "scores.csv"
    result = _score(config, pred, gt, "--mask-dir", mask, "-p", "istd", "--csv", csv, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["protocol"] == "istd" and record["csv"] == str(csv)

    def load(folder, mode="RGB"):
        arrays = [np.asarray(Image.open(folder / f"img{i}.png").convert(mode)) for i in range(3)]
        stacked = torch.from_numpy(np.stack(arrays))
        return stacked.unsqueeze(1) if mode == "L" else stacked.permute(0, 3, 1, 2)

    direct = get_protocol("istd", tmp_path).evaluate(load(pred), load(gt), load(mask, "L"))
    assert record["summary"] == pytest.approx(direct.summary)
    assert "lpips" in record["unavailable"]


def test_raindrop_pairs_clean_with_rain_names(tmp_path, cli_config):
    config, _ = cli_config
    image = np.full((32, 32, 3), 100, np.uint8)
    _write(tmp_path / "gt", "7_clean.png", image)
    _write(tmp_path / "pred", "7_rain.png", image + 2)
    result = _score(config, tmp_path / "pred", tmp_path / "gt", "-p", "raindrop", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["meta"]["n_images"] == 1


def _assert_refused(result, csv_dir, text):
    assert result.exit_code == 2, result.output
    assert text in result.output
    assert not list(csv_dir.parent.rglob("*.csv"))  # no CSV anywhere, results/scores included


def test_missing_partner(folders, cli_config):
    pred, gt, _ = folders
    (gt / "img1.png").unlink()
    _assert_refused(
        _score(cli_config[0], pred, gt, "-p", "rgb"), pred.parent, "have no ground truth: img1"
    )


def test_size_mismatch(folders, cli_config):
    pred, gt, mask = folders
    _write(pred, "img0.png", np.zeros((30, 48, 3), np.uint8))
    _assert_refused(_score(cli_config[0], pred, gt, "-p", "rgb"), pred.parent, "size mismatch")
    _write(mask, "img2.png", np.zeros((10, 10), np.uint8))
    refused = _score(cli_config[0], pred, gt, "--mask-dir", mask, "-p", "istd")
    _assert_refused(refused, pred.parent, "size mismatch: mask")


@pytest.mark.parametrize("content", [b"this is not a png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"])
def test_unreadable_image(folders, cli_config, content):
    pred, gt, _ = folders
    (pred / "img2.png").write_bytes(content)
    _assert_refused(_score(cli_config[0], pred, gt, "-p", "rgb"), pred.parent, "img2.png")


def test_truncated_image_found_while_scoring(folders, cli_config):
    pred, gt, _ = folders
    data = (pred / "img1.png").read_bytes()
    (pred / "img1.png").write_bytes(data[: len(data) // 2])
    _assert_refused(_score(cli_config[0], pred, gt, "-p", "rgb"), pred.parent, "img1.png")


def test_unknown_protocol_and_misplaced_mask(folders, cli_config):
    pred, gt, mask = folders
    _assert_refused(_score(cli_config[0], pred, gt, "-p", "psnr"), pred.parent, "valid choices")
    _assert_refused(
        _score(cli_config[0], pred, gt, "--mask-dir", mask, "-p", "lol"),
        pred.parent,
        "takes no masks",
    )


def test_match_pairs_released_names_and_lists_what_it_cannot(tmp_path, cli_config):
    """Released outputs carry suffixes (95-1_free.png against 95-1.png): --match names them;
    a file it does not match is listed, never dropped or paired by order."""
    config, _ = cli_config
    rng = np.random.default_rng(1)
    for stem in ("95-1", "95-2"):
        clean = rng.integers(20, 230, (32, 32, 3), dtype=np.uint8)
        _write(tmp_path / "gt", f"{stem}.png", clean)
        _write(tmp_path / "released", f"{stem}_free.png", clean)
    plain = _score(config, tmp_path / "released", tmp_path / "gt", "-p", "rgb")
    assert plain.exit_code == 2 and "have no ground truth" in plain.output
    matched = _score(
        config,
        tmp_path / "released",
        tmp_path / "gt",
        "-p",
        "rgb",
        "--match",
        "(?P<id>.+)_free",
        "--json",
    )
    assert matched.exit_code == 0, matched.output
    assert json.loads(matched.stdout)["meta"]["n_images"] == 2
    _write(tmp_path / "released", "readme-figure.png", np.zeros((32, 32, 3), np.uint8))
    stray = _score(
        config, tmp_path / "released", tmp_path / "gt", "-p", "rgb", "--match", "(.+)_free"
    )
    assert stray.exit_code == 2
    assert "1 file(s) do not match --match '(.+)_free': readme-figure.png" in " ".join(
        stray.output.split()
    )
    bad = _score(config, tmp_path / "released", tmp_path / "gt", "-p", "rgb", "--match", "x")
    assert bad.exit_code == 2 and "has no group" in bad.output


def test_audit_scores_every_convention_and_agrees_with_each_variant(folders, cli_config):
    from bench.conventions import conventions_for

    pred, gt, mask = folders
    config, _ = cli_config
    result = _score(config, pred, gt, "--mask-dir", mask, "-p", "istd", "--audit", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    rows = {row["protocol"]: row for row in record["rows"]}
    assert list(rows) == ["istd"] + [c.name for c in conventions_for("istd")]
    for name in ("istd-origin", "istd-d65", "istd-fu"):  # the row is what --protocol NAME gives
        alone = json.loads(
            _score(config, pred, gt, "--mask-dir", mask, "-p", name, "--json").stdout
        )
        assert rows[name]["values"]["PSNR"] == pytest.approx(alone["summary"]["psnr_all"])
        assert rows[name]["values"]["MAE"] == pytest.approx(alone["summary"]["mae_all_pi"])
    assert rows["istd"]["deltas"]["PSNR"] == 0
    assert pd.read_csv(record["csv"]).shape[0] == len(rows)
    # the moves measured against the paper value's interval over these images, recomputed
    # here from `bench score`'s own per-image CSV with scipy
    from scipy import stats

    alone = json.loads(_score(config, pred, gt, "--mask-dir", mask, "-p", "istd", "--json").stdout)
    psnr = pd.read_csv(alone["csv"])["psnr_all"].to_numpy()
    interval = stats.bootstrap((psnr,), np.mean, n_resamples=10_000, rng=np.random.default_rng(0))
    low, high = interval.confidence_interval
    assert record["yardstick"]["half_width"] == pytest.approx((high - low) / 2, rel=1e-9)
    text = _score(config, pred, gt, "--mask-dir", mask, "-p", "istd", "--audit").output
    assert "the last column divides each move by its half-width" in " ".join(text.split())
    generation = _score(config, pred, gt, "-p", "celeba", "--audit")
    assert generation.exit_code == 2 and "has no audit" in generation.output


def test_the_protocol_defaults_to_the_datasets_or_rgb(folders, cli_config):
    pred, gt, _ = folders
    config, _ = cli_config
    plain = _score(config, pred, gt)
    assert plain.exit_code == 0, plain.output
    text = " ".join(plain.output.split())
    assert "protocol rgb:" in text and "a plain pair of folders" in text
    # ground truth inside a registered dataset's folder: that dataset's paper protocol
    inside = config.parent / "data" / "synth-shadow" / "test" / "test_C"
    inside.parent.mkdir(parents=True)
    gt.rename(inside)
    shadow = _score(config, pred, inside)
    assert "protocol istd: " in " ".join(shadow.output.split())


def test_metrics_unavailable_for_one_reason_are_said_once(folders, cli_config):
    """ISTD without masks: the region metrics share one reason, said in one line; LPIPS's
    long reason stays out of the table."""
    pred, gt, _ = folders
    config, _ = cli_config
    result = _score(config, pred, gt, "-p", "istd")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "unavailable:" in line]
    reasons = [line.split("unavailable:", 1)[1] for line in lines]
    assert len(reasons) == len(set(reasons)) and len(lines) <= 2
    assert any("psnr_s" in line and "psnr_ns" in line for line in lines)
    table = [line for line in result.output.splitlines() if line.startswith("│")]
    assert max(len(line) for line in table) < 100
