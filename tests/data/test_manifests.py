"""The manifests in datasets/: complete, consistent with protocols.md, and loadable."""

from pathlib import Path

import pytest

from bench.data import DATASETS, get_dataset
from bench.data.spec import PROTOCOLS, TASKS, parse_manifest
from bench.errors import UsageError
from bench.resources import manifest_dir

REPO = Path(__file__).resolve().parents[2]

PAPER_DATASETS = {
    "istd",
    "lol",
    "sid-rgb",
    "lol-v2-real",
    "raindrop",
    "gopro",
    "celeba",
    "cifar10",
    "celebahq",
    "afhq",
}
SYNTH_PROTOCOLS = {
    "synth-shadow": "istd",
    "synth-lowlight": "lol",
    "synth-rain": "raindrop",
    "synth-blur": "gopro",
    "synth-faces": "celeba",
    "synth-sr": "sr-y",
}


def test_manifest_folder_is_the_source_tree():
    assert manifest_dir() == REPO / "datasets"


#: super-resolution sets, SR3's face configurations among them (test-only sets have no train split)
SR_DATASETS = {"set5", "set14", "b100", "urban100", "manga109", "div2k", "sr3-faces-16-128", "sr3-faces-64-512"}  # fmt: skip


def test_every_dataset_has_a_manifest_and_is_registered():
    assert set(DATASETS.names()) == PAPER_DATASETS | SR_DATASETS | set(SYNTH_PROTOCOLS)
    assert {p.stem for p in (REPO / "datasets").glob("*.toml")} == set(DATASETS.names())


@pytest.mark.parametrize("name", sorted(PAPER_DATASETS | set(SYNTH_PROTOCOLS)))
def test_manifest_fields(name):
    spec = get_dataset(name)
    assert spec.task in TASKS and spec.protocol in PROTOCOLS
    assert spec.kind in ("triplet", "paired", "unpaired")
    assert spec.test_split in spec.splits and spec.train_split in spec.splits
    assert spec.synthetic == name.startswith("synth-")
    if not spec.synthetic:
        assert spec.homepage.startswith("https://")
        assert spec.manual or spec.downloads  # says how to get the files
    for split in spec.split_layouts.values():
        assert "target" in split.roles


@pytest.mark.parametrize("name", sorted(SR_DATASETS))
def test_super_resolution_manifests(name):
    spec = get_dataset(name)
    assert (spec.task, spec.kind) == ("super-resolution", "paired")
    assert spec.homepage.startswith("https://") and (spec.manual or spec.downloads)
    assert spec.preprocess["test_size"] == "native"  # resizing would change the scale
    setting = spec.super_resolution
    assert setting.kernel == ("pil" if name.startswith("sr3-") else "matlab")
    test = spec.split(spec.test_split).roles
    if spec.prepare == "sr-lr":  # LR made by bench: EDSR's benchmark names
        assert (test["input"].folder, test["input"].pattern) == ("LR_bicubic/X4", "{id}x4")
    assert spec.protocol == ("sr3-faces" if name.startswith("sr3-") else "sr-y")


def test_synthetic_suites_score_with_the_protocol_they_stand_in_for():
    for name, protocol in SYNTH_PROTOCOLS.items():
        assert get_dataset(name).protocol == protocol


def test_paper_counts_and_pairing_rules():
    assert get_dataset("istd").splits == {"train": 1330, "test": 540}
    assert get_dataset("istd").kind == "triplet" and get_dataset("istd").has_mask
    assert get_dataset("lol").splits == {"our485": 485, "eval15": 15}
    assert get_dataset("raindrop").splits == {"train": 861, "test_a": 58}
    assert get_dataset("raindrop").test_split == "test_a"
    roles = get_dataset("raindrop").split("train").roles
    assert (
        roles["target"].stem_for("12") == "12_clean" and roles["input"].stem_for("12") == "12_rain"
    )
    # LOL-v2/Real_captured/Test/Low/low00690.png <-> Test/Normal/normal00690.png
    assert get_dataset("lol-v2-real").splits == {"train": 689, "test": 100}
    roles = get_dataset("lol-v2-real").split("test").roles
    assert (roles["input"].stem_for("00690"), roles["target"].stem_for("00690")) == (
        "low00690", "normal00690")  # fmt: skip
    assert get_dataset("gopro").splits == {"train": 2103, "test": 1111}
    assert get_dataset("celeba").splits == {"train": 162770, "valid": 19867, "test": 19962}
    assert get_dataset("cifar10").splits == {"train": 50000, "test": 10000}
    # Resfusion's FID: 50,000 generated images against CIFAR10(train=True)
    assert get_dataset("cifar10").test_split == "train"
    assert get_dataset("celeba").preprocess["fixed_crop"] == [89, 121, 128]
    # equalising LOL's input is RDDM's pipeline, not the dataset's (tests/data/test_pipeline.py)
    assert "equalize_input" not in get_dataset("lol").preprocess
    # synth-shadow uses ISTD's folder names so one loader and pairing rule serve both
    istd, synth = get_dataset("istd"), get_dataset("synth-shadow")
    for split in ("train", "test"):
        assert {r: v.folder for r, v in istd.split(split).roles.items()} == {
            r: v.folder for r, v in synth.split(split).roles.items()
        }


def test_open_questions_are_stated_not_invented():
    assert get_dataset("sid-rgb").splits == {"train": None, "test": None}
    assert any("split" in point for point in get_dataset("sid-rgb").open_points)
    assert any("_rain" in point for point in get_dataset("raindrop").open_points)
    assert any("2,103" in point for point in get_dataset("gopro").open_points)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UsageError, match="unknown dataset 'imagenet'.*istd.*synth-shadow"):
        get_dataset("imagenet")


def test_unknown_split_names_valid_splits():
    with pytest.raises(UsageError, match="no split 'test'.*eval15, our485"):
        get_dataset("lol").split("test")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'name = "bad"\nkind = "unpaired"\ntask = "dancing"\nprotocol = "lol"\n'
            'test_split = "t"\n[splits.t]\ntarget = "x"',
            "task = 'dancing' is not valid; valid choices: deblurring",
        ),
        (
            'name = "bad"\nkind = "unpaired"\ntask = "low-light"\nprotocol = "lol"\n'
            'test_split = "t"\n[splits.t]\ntarget = "x"\n[preprocess]\nopen = []',
            r"unknown key 'preprocess.open'; valid keys in preprocess: center_box_mask",
        ),
        ('name = "bad"\nkind = "unpaired"', r"the top level is missing key\(s\) task, protocol"),
        (
            'name = "bad"\ntask = "low-light"\nprotocol = "lol"\nkind = "paired"\ntest_split = "t"\n'
            '[splits.t]\ntarget = "x"',
            "splits.t is a paired split and has no 'input' folder",
        ),
        (
            'name = "bad"\ntask = "low-light"\nprotocol = "lol"\nkind = "paired"\ntest_split = "t"\n'
            '[splits.t]\ntarget = "x"\ninput = "y"\ncount = "many"',
            "splits.t.count must be an integer, got str 'many'",
        ),
        (
            'name = "bad"\ntask = "low-light"\nprotocol = "lol"\nkind = "paired"\ntest_split = "u"\n'
            '[splits.t]\ntarget = "x"\ninput = "y"',
            "test_split = 'u' is named but not defined",
        ),
        ("name = [", "not valid TOML"),
    ],
)
def test_malformed_manifest_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        parse_manifest(path)
