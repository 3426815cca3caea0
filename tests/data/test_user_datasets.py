"""Your own folders as datasets: `bench data add/remove`, layout detection, the hash split,
and every bad folder refused with one error and nothing registered."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import random_rgb, write_png
from typer.testing import CliRunner

from bench.cli import app
from bench.data import dataset_names, get_dataset, use_user_datasets
from bench.data.layout import add_command, detect, register
from bench.data.verify import LOCK_NAME, read_lock
from bench.errors import UsageError


@pytest.fixture(autouse=True)
def _forget_user_datasets():
    yield
    use_user_datasets(None)


def write_pairs(folder: Path, ids, roles=("input", "target"), size=(24, 32), seed=0) -> Path:
    for index, pair_id in enumerate(ids):
        clean = random_rgb(*size, seed=seed + index)
        for role in roles:
            if role.lower() in ("b", "mask"):
                write_png(
                    folder / role / f"{pair_id}.png", (clean[..., 0] > 127).astype(np.uint8) * 255
                )
            else:
                image = clean if role.lower() in ("target", "gt", "high", "c") else clean // 2
                write_png(folder / role / f"{pair_id}.png", image)
    return folder


def in_test(stem: str, fraction: float) -> bool:
    """The split rule, written again from its description: SHA-256 of the UTF-8 stem, the
    first 8 bytes big-endian as a fraction of 2**64."""
    value = int(hashlib.sha256(stem.encode()).hexdigest()[:16], 16)
    return value < fraction * 2**64


@pytest.mark.parametrize(
    "folders, layout",
    [
        (("input", "target"), "pairs"),
        (("lq", "gt"), "pairs"),
        (("low", "high"), "pairs"),
        (("A", "B", "C"), "triplets"),
        (("input", "mask", "target"), "triplets"),
    ],
)
def test_layouts_are_recognised_by_folder_names(tmp_path, folders, layout):
    write_pairs(tmp_path / "flat", ["a", "b"], folders)
    found = detect(tmp_path / "flat")
    assert found.layout == layout and found.by_hash
    assert set(found.splits["test"].values()) == set(folders)
    for split in ("train", "test"):  # ISTD: train/train_A, test/test_A ...
        write_pairs(tmp_path / "split" / split, ["a"], [f"{split}_{f}" for f in folders])
    found = detect(tmp_path / "split")
    assert found.layout == layout and not found.by_hash
    assert found.splits["train"]["target"] == f"train/train_{folders[-1]}"


def test_single_images_and_ambiguity(tmp_path):
    for index in range(3):
        write_png(tmp_path / "faces" / f"{index}.png", random_rgb(8, 8, index))
    assert detect(tmp_path / "faces").layout == "single"
    write_pairs(tmp_path / "both", ["a"], ("input", "target", "lq", "gt"))
    with pytest.raises(UsageError, match="ambiguous layout.*input/\\+target/ and lq/\\+gt/"):
        detect(tmp_path / "both")
    (tmp_path / "nothing" / "stuff").mkdir(parents=True)
    with pytest.raises(UsageError, match="no known layout found"):
        detect(tmp_path / "nothing")


def test_hash_split_is_by_stem_and_recorded(tmp_path):
    ids = [f"scene{i:03d}" for i in range(40)]
    folder = write_pairs(tmp_path / "pairs", ids)
    spec, report, _ = register(
        "mine", folder, tmp_path / "user", task="deraining", test_fraction=0.25
    )
    expected_test = sorted(i for i in ids if in_test(i, 0.25))
    assert 0 < len(expected_test) < len(ids)
    assert report.counts == {"train": len(ids) - len(expected_test), "test": len(expected_test)}
    from bench.data.verify import pair_split

    assert sorted(pair_split(spec, folder, "test").pairs) == expected_test
    lock = read_lock(folder)
    assert lock["split_rule"] == spec.split_rule and "0.25" in lock["split_rule"]
    # a new pair never moves an existing one across the split
    write_pairs(folder, ["zzz-new"], seed=99)
    again = get_dataset("mine")
    now = sorted(pair_split(again, folder, "test").pairs)
    assert [i for i in now if i != "zzz-new"] == expected_test


def test_registered_dataset_is_listed_verified_and_removed(tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text('[paths]\ndata_root = "data"\n')
    folder = write_pairs(tmp_path / "pairs", [f"{i}" for i in range(12)])
    runner = CliRunner()
    base = ["--config", str(config)]
    added = runner.invoke(
        app, ["data", "add", "lab", "--path", str(folder), "--task", "low-light", *base]
    )
    assert added.exit_code == 0, added.output
    manifest = tmp_path / "user-datasets" / "lab.toml"
    assert manifest.is_file() and (folder / LOCK_NAME).is_file()
    listed = runner.invoke(app, ["data", "list", "--json", *base])
    record = next(r for r in json.loads(listed.stdout) if r["name"] == "lab")
    assert record["source"] == "yours" and record["status"] == "verified"
    assert sum(record["splits"].values()) == 12 and record["path"] == str(folder)
    verified = runner.invoke(app, ["data", "verify", "lab", *base])
    assert verified.exit_code == 0, verified.output
    removed = runner.invoke(app, ["data", "remove", "lab", *base])
    assert removed.exit_code == 0 and not manifest.exists()
    assert (folder / "input" / "0.png").is_file()  # the images stay
    builtin = runner.invoke(app, ["data", "remove", "istd", *base])
    assert builtin.exit_code == 2 and "built-in" in builtin.output


IDS = [f"{i:02d}" for i in range(12)]  # enough for a non-empty test split at 0.2


def _unpaired(folder):
    write_pairs(folder, IDS)
    write_png(folder / "input" / "orphan.png", random_rgb(24, 32))


def _sizes(folder):
    write_pairs(folder, IDS)
    write_png(folder / "target" / "05.png", random_rgb(20, 32))


def _corrupt(folder):
    write_pairs(folder, IDS)
    (folder / "target" / "05.png").write_bytes(b"not a png")


def _empty(folder):
    (folder / "input").mkdir(parents=True)
    (folder / "target").mkdir()


@pytest.mark.parametrize(
    "make, message",
    [
        (_unpaired, "orphan.png: no partner 'orphan.\\*'"),
        (_sizes, "05.png: pair sizes differ"),
        (_corrupt, "05.png"),
        (_empty, "would be empty"),
    ],
)
def test_bad_folder_is_one_error_and_registers_nothing(tmp_path, make, message):
    folder = tmp_path / "bad"
    make(folder)
    config = tmp_path / "bench.toml"
    config.write_text("")
    result = CliRunner().invoke(
        app,
        ["data", "add", "bad", "--path", str(folder), "--task", "deraining", "-c", str(config)],
        terminal_width=1000,
    )
    assert result.exit_code == 2
    assert "nothing was registered" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1
    assert re.search(message, result.output)
    assert not (tmp_path / "user-datasets" / "bad.toml").exists()
    assert not (folder / LOCK_NAME).exists()
    assert "bad" not in dataset_names()


def test_many_problems_list_ten_then_a_count(tmp_path):
    folder = write_pairs(tmp_path / "pairs", IDS)
    write_png(folder / "target" / "03.png", random_rgb(20, 32))  # and a size mismatch
    for index in range(14):
        write_png(folder / "input" / f"orphan{index:02d}.png", random_rgb(24, 32))
    with pytest.raises(UsageError) as caught:
        register("many", folder, tmp_path / "user", task="deraining")
    text = str(caught.value)
    assert text.count("no partner") == 10 and "... and 5 more" in text and "15 problems" in text
    assert not (tmp_path / "user").exists()


def test_names_tasks_and_fractions_are_checked(tmp_path):
    folder = write_pairs(tmp_path / "pairs", ["a", "b", "c"])
    user = tmp_path / "user"
    with pytest.raises(UsageError, match="--task"):
        register("mine", folder, user)
    with pytest.raises(UsageError, match="'istd' exists already"):
        register("istd", folder, user, task="deraining")
    with pytest.raises(UsageError, match="lower case"):
        register("My Data", folder, user, task="deraining")
    with pytest.raises(UsageError, match="--test-fraction 1.5"):
        register("mine", folder, user, task="deraining", test_fraction=1.5)
    with pytest.raises(UsageError, match="--protocol 'nope'"):
        register("mine", folder, user, task="deraining", protocol="nope")
    with pytest.raises(UsageError, match="generation takes single images"):
        register("mine", folder, user, task="generation")
    assert not user.exists()


def test_run_on_an_unregistered_folder_names_the_add_command(tmp_path):
    folder = write_pairs(tmp_path / "mypairs", ["a", "b"])
    result = CliRunner().invoke(app, ["run", str(folder), "-c", str(tmp_path / "none.toml")])
    assert "does not exist" in result.output  # a missing --config is refused first
    (tmp_path / "bench.toml").write_text("")
    result = CliRunner().invoke(app, ["run", str(folder), "-c", str(tmp_path / "bench.toml")])
    assert result.exit_code == 2
    assert f"bench data add mypairs --path {folder} --layout pairs --task" in result.output
    assert add_command(folder).startswith("bench data add mypairs")


def test_protocol_names_a_manifest_may_give_are_the_registered_ones():
    from bench.data.spec import PROTOCOLS as MANIFEST_PROTOCOLS
    from bench.protocols import PROTOCOLS

    assert sorted(MANIFEST_PROTOCOLS) == PROTOCOLS.names()


def test_own_folders_register_run_and_report(tmp_path):
    """A folder with train/ and test/ and one without both go through `bench run` and
    `bench report` like a built-in dataset (tiny budget: this checks the path, not quality)."""
    config = tmp_path / "bench.toml"
    config.write_text(
        '[tracking]\nexperiment = "mine"\n[profiles.smoke]\nimage_size = 16\nbatch_size = 2\n'
        "iterations = 2\nunet_dim = 8\nunet_mults = [1, 2]\neval_images = 4\n"
    )
    for split, ids in (("train", ["t0", "t1", "t2"]), ("test", ["e0", "e1"])):
        write_pairs(tmp_path / "split" / split, ids, ("lq", "gt"))
    # mixed sizes (the hash puts pairs 8 and 9 in the test split, one of each size): trained
    # at the profile's size, scored at each file's own size
    write_pairs(tmp_path / "flat", [f"{i}" for i in range(9)], ("low", "high"))
    write_pairs(tmp_path / "flat", [f"{i}" for i in range(9, 12)], ("low", "high"), (30, 41), 9)
    runner = CliRunner()
    for name, folder in (("with-split", "split"), ("by-hash", "flat")):
        added = runner.invoke(
            app, ["data", "add", name, "--path", str(tmp_path / folder), "--task", "low-light",
                  "-c", str(config)],
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        ran = runner.invoke(
            app, ["run", name, "-m", "rddm", "--steps", "1", "-c", str(config), "--json"]
        )
        assert ran.exit_code == 0, ran.output
        cells = json.loads(ran.stdout)["cells"]
        assert [c["status"] for c in cells] == ["FINISHED"]
        assert "rgb/psnr" in cells[0]["metrics"]
    reported = runner.invoke(app, ["report", "-c", str(config)])
    assert reported.exit_code == 0, reported.output
    text = next((tmp_path / "reports").rglob("report.md")).read_text()
    assert "### with-split, smoke profile (protocol rgb)" in text
    assert "### by-hash, smoke profile (protocol rgb)" in text
    assert "## Protocol audit" in text and "| `rgb-y` |" in text  # every run is audited
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    rules = {
        r.data.tags["dataset"]: r.data.tags.get("dataset_split_rule")
        for r in runs
        if r.data.tags.get("run_kind") == "cell"
    }
    assert "0.2 -> test" in rules["by-hash"] and rules["with-split"] is None
    import pandas as pd

    by_hash = next(
        r
        for r in runs
        if r.data.tags.get("run_kind") == "cell" and r.data.tags["dataset"] == "by-hash"
    )
    per_image = pd.read_csv(client.download_artifacts(by_hash.info.run_id, "per_image.csv"))
    assert sorted(per_image["name"].astype(str)) == ["8", "9"]  # both sizes scored


def test_a_registered_folder_that_moved_is_named_with_the_way_out(tmp_path):
    folder = write_pairs(tmp_path / "pairs", [f"{i}" for i in range(10)])
    config = tmp_path / "bench.toml"
    config.write_text("")
    added = CliRunner().invoke(
        app,
        ["data", "add", "moved", "--path", str(folder), "--task", "deraining", "-c", str(config)],
    )
    assert added.exit_code == 0, added.output
    folder.rename(tmp_path / "elsewhere")
    result = CliRunner().invoke(
        app, ["data", "verify", "moved", "-c", str(config)], terminal_width=400
    )
    assert result.exit_code != 0
    assert "was registered from" in result.output and "bench data remove moved" in result.output


def test_single_images_register_for_generation_with_a_hash_split(tmp_path):
    for index in range(20):
        write_png(tmp_path / "faces" / f"face{index:02d}.png", random_rgb(16, 16, index))
    spec, report, detected = register("faces", tmp_path / "faces", tmp_path / "user")
    assert detected.layout == "single" and spec.kind == "unpaired"
    assert spec.task == "generation" and spec.protocol == "celeba"
    expected = sum(in_test(f"face{i:02d}", 0.2) for i in range(20))
    assert report.counts == {"train": 20 - expected, "test": expected}
    # the lock sits among the images and is never taken for one
    assert (tmp_path / "faces" / LOCK_NAME).is_file()
    from bench.data.verify import verify

    assert verify(get_dataset("faces"), tmp_path / "faces").counts == report.counts
