"""Conversions to the canonical layout, and the `bench data` commands end to end."""

import hashlib
import io
import json
import pickle
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import random_rgb, write_png
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.data import DATASETS, get_dataset
from bench.data.prepare import prepare
from bench.data.spec import Download
from bench.errors import BenchError

REPO = Path(__file__).resolve().parents[2]


def run(config_file, *args):
    return CliRunner().invoke(
        app, ["data", *args, "--config", str(config_file)], terminal_width=200
    )


def test_gopro_sequences_are_linked_into_the_canonical_layout(tmp_path):
    for split, sequence in (("train", "GOPR0372_07_00"), ("test", "GOPR0384_11_00")):
        for kind, seed in (("blur", 1), ("sharp", 2)):
            write_png(
                tmp_path / "GOPRO_Large" / split / sequence / kind / "000047.png",
                random_rgb(8, 8, seed),
            )
    prepare(get_dataset("gopro"), tmp_path)
    # MPRNet's names: <sequence>-<frame> (test/input/GOPR0384_11_00-000001.png)
    moved = tmp_path / "train" / "input" / "GOPR0372_07_00-000047.png"
    original = tmp_path / "GOPRO_Large" / "train" / "GOPR0372_07_00" / "blur" / "000047.png"
    assert moved.read_bytes() == original.read_bytes()
    assert (tmp_path / "test" / "target" / "GOPR0384_11_00-000047.png").is_file()
    with pytest.raises(BenchError, match="already exists"):
        prepare(get_dataset("gopro"), tmp_path)


def test_celeba_partition(tmp_path):
    for index in range(1, 5):
        write_png(tmp_path / "img_align_celeba" / f"{index:06d}.jpg", random_rgb(4, 4))
    listing = tmp_path / "list_eval_partition.txt"
    listing.write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n")
    # a stand-in listing: not the official file, whose MD5 the manifest checks
    with pytest.raises(
        BenchError, match="list_eval_partition.txt: MD5 .* the published one is d32c9"
    ):
        prepare(get_dataset("celeba"), tmp_path)
    assert not (tmp_path / "train").exists()
    prepare(replace(get_dataset("celeba"), prepare_md5={}, manual_files=()), tmp_path)
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["000001.jpg", "000002.jpg"]
    assert [p.name for p in (tmp_path / "test").iterdir()] == ["000004.jpg"]


def test_celeba_bad_partition_line_leaves_nothing(tmp_path):
    write_png(tmp_path / "img_align_celeba" / "000001.jpg", random_rgb(4, 4))
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 7\n")
    with pytest.raises(
        BenchError, match=r"list_eval_partition.txt:1: expected an image name and 0, 1 or 2"
    ):
        prepare(replace(get_dataset("celeba"), prepare_md5={}, manual_files=()), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "img_align_celeba",
        "list_eval_partition.txt",
    ]


def test_unwrap_lifts_the_archive_folder(tmp_path):
    write_png(tmp_path / "ISTD_Dataset" / "train" / "train_A" / "1.png", random_rgb(4, 4))
    prepare(get_dataset("istd"), tmp_path)
    assert (tmp_path / "train" / "train_A" / "1.png").is_file()
    assert not (tmp_path / "ISTD_Dataset").exists()


@pytest.mark.parametrize(("name", "top", "inner"), [
    ("afhq", "afhq", "train/dog/flickr_dog_000002.jpg"),  # StarGAN v2's afhq.zip
    ("celebahq", "celeba_hq", "val/female/000004.jpg"),  # StarGAN v2's celeba_hq.zip
])  # fmt: skip
def test_stargan_archives_are_unwrapped(tmp_path, name, top, inner):
    write_png(tmp_path / top / inner, random_rgb(4, 4))
    prepare(get_dataset(name), tmp_path)
    assert (tmp_path / inner).is_file() and not (tmp_path / top).exists()


def kaggle_csv(entries, ending="\n"):
    return "image_id,partition" + ending + "".join(f"{n},{p}{ending}" for n, p in entries)


def test_kaggle_celeba_csv_splits_like_the_official_list(tmp_path, capsys):
    """Kaggle's copy ships list_eval_partition.csv: read, and checked against the official
    list's MD5 by writing it in that list's format."""
    entries = [("000001.jpg", 0), ("000002.jpg", 1), ("000003.jpg", 2)]
    for name, _ in entries:
        write_png(tmp_path / "img_align_celeba" / name, random_rgb(4, 4))
    (tmp_path / "list_eval_partition.csv").write_text(kaggle_csv(entries))
    official = "".join(f"{n} {p}\r\n" for n, p in entries)  # as if this were the published list
    digest = hashlib.md5(official.encode()).hexdigest()
    spec = replace(get_dataset("celeba"), prepare_md5={"list_eval_partition.txt": digest})
    prepare(spec, tmp_path)
    assert [p.name for p in (tmp_path / "valid").iterdir()] == ["000002.jpg"]
    assert "MD5 matches" in capsys.readouterr().err
    # another listing: split, and said not to be the official one
    other = tmp_path / "other"
    for name, _ in entries:
        write_png(other / "img_align_celeba" / name, random_rgb(4, 4))
    (other / "list_eval_partition.csv").write_text(kaggle_csv([(n, 0) for n, _ in entries]))
    prepare(spec, other)
    assert "does not give that list's MD5" in capsys.readouterr().err
    bad = tmp_path / "bad"
    (bad / "img_align_celeba").mkdir(parents=True)
    (bad / "list_eval_partition.csv").write_text("name;split\n")
    with pytest.raises(BenchError, match="expected the header 'image_id,partition'"):
        prepare(spec, bad)


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def fake_cifar_batches(images: np.ndarray) -> dict[str, bytes]:
    """CIFAR-10-shaped python pickles with 2 images per batch, by member name."""
    out = {}
    for number, name in enumerate(CIFAR_BATCHES):
        batch = {b"data": images[2 * number : 2 * number + 2].reshape(2, -1), b"labels": [0, 1]}
        out[f"cifar-10-batches-py/{name}"] = pickle.dumps(batch)
    return out


def fake_cifar_archive(path: Path) -> tuple[Path, np.ndarray, dict[str, str]]:
    """The archive, its images and the MD5 of each batch (what [prepare.md5] lists)."""
    images = np.random.default_rng(0).integers(0, 256, (12, 3, 32, 32), dtype=np.uint8)
    batches = fake_cifar_batches(images)
    with tarfile.open(path, "w:gz") as bundle:
        for name, payload in batches.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            bundle.addfile(info, io.BytesIO(payload))
    md5 = {name: hashlib.md5(payload).hexdigest() for name, payload in batches.items()}
    return path, images, md5


class Payload:
    """Unpickled, creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_cifar_pickles_are_read_only_after_their_checksum(tmp_path):
    """A folder unpacked by hand: a batch replaced by a pickle that runs code is refused by
    its MD5 before it is read; a batch the manifest lists no MD5 for is refused too."""
    spec = get_dataset("cifar10")
    assert set(spec.prepare_md5) == {f"cifar-10-batches-py/{n}" for n in CIFAR_BATCHES}
    images = np.zeros((12, 3, 32, 32), np.uint8)
    batches = fake_cifar_batches(images)
    marker = tmp_path / "ran"
    batches["cifar-10-batches-py/test_batch"] = pickle.dumps({b"data": Payload(marker)})
    for name, payload in batches.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(payload)
    md5 = {name: hashlib.md5(payload).hexdigest() for name, payload in batches.items()}
    md5["cifar-10-batches-py/test_batch"] = spec.prepare_md5["cifar-10-batches-py/test_batch"]
    with pytest.raises(BenchError, match=r"test_batch: MD5 [0-9a-f]{32}, the manifest's is 4035"):
        prepare(replace(spec, prepare_md5=md5), tmp_path)
    del md5["cifar-10-batches-py/test_batch"]
    with pytest.raises(BenchError, match="test_batch: the manifest lists no MD5"):
        prepare(replace(spec, prepare_md5=md5), tmp_path)
    assert not marker.exists()
    assert not (tmp_path / "train").exists()  # nothing half-written


def test_fetch_downloads_extracts_and_prepares(tmp_path, config_file, monkeypatch):
    archive, images, batch_md5 = fake_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    item = Download(
        url=archive.as_uri(), file=archive.name, md5=hashlib.md5(archive.read_bytes()).hexdigest()
    )
    stand_in = replace(get_dataset("cifar10"), downloads=(item,), prepare_md5=batch_md5)
    monkeypatch.setitem(DATASETS._items, "cifar10", stand_in)
    result = run(config_file, "fetch", "cifar10")
    assert result.exit_code == 0, result.output
    root = config_file.parent / "data" / "cifar10"
    train = sorted((root / "train").glob("*.png"))
    assert len(train) == 10
    assert np.array_equal(np.asarray(Image.open(train[3])), images[3].transpose(1, 2, 0))
    assert np.array_equal(
        np.asarray(Image.open(root / "test" / "00001.png")), images[11].transpose(1, 2, 0)
    )
    # the real counts (50000/10000) do not match this stand-in: verify says so and exits 1
    result = run(config_file, "verify", "cifar10")
    assert result.exit_code == 1 and "10 images in split 'train', expected 50000" in result.output


def test_fetch_manual_source_prints_where_to_put_files(config_file):
    result = run(config_file, "fetch", "lol")
    assert result.exit_code == 1
    root = config_file.parent / "data" / "lol"
    assert f"{root}/our485/low" in result.output and "daooshee.github.io" in result.output
    assert "needs a manual download" in result.output


def test_list_verify_and_synth_commands(config_file):
    before = {r["name"]: r for r in json.loads(run(config_file, "list", "--json").stdout)}
    # an offline suite is generated, not fetched: said so, with the command
    assert before["synth-rain"]["status"] == "not generated"
    assert before["synth-rain"]["next"].startswith("bench data synth synth-rain")
    assert before["istd"]["next"] == "bench data fetch istd"
    result = run(
        config_file, "synth", "synth-shadow", "--train-count", "4", "--test-count", "2", "--json"
    )
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    listing = {r["name"]: r for r in json.loads(run(config_file, "list", "--json").stdout)}
    assert listing["synth-shadow"]["status"] == "verified"
    assert listing["synth-shadow"]["splits"] == {"train": 4, "test": 2}
    assert listing["synth-shadow"]["fingerprint"] == made["fingerprint"]
    assert listing["istd"]["status"] == "missing" and listing["istd"]["splits"]["train"] == 1330
    verified = json.loads(run(config_file, "verify", "synth-shadow", "--json").stdout)
    assert verified["fingerprint"] == made["fingerprint"] and verified["counts"] == {
        "train": 4,
        "test": 2,
    }
    victim = sorted(Path(made["path"], "test", "test_A").glob("*.png"))[0]
    write_png(victim, np.zeros((96, 128), np.uint8))
    result = run(config_file, "verify", "synth-shadow")
    assert result.exit_code == 1
    assert f"{victim}: grayscale image" in result.output
    assert run(config_file, "verify", "nope").exit_code == 2


def test_verify_path_option_and_present_status(config_file, small_shadow):
    result = run(config_file, "verify", "synth-shadow", "--path", str(small_shadow), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["path"] == str(small_shadow)
    (config_file.parent / "data" / "lol").mkdir(parents=True)
    listing = {r["name"]: r for r in json.loads(run(config_file, "list", "--json").stdout)}
    assert listing["lol"]["status"] == "present"
    assert listing["lol"]["next"] == "bench data verify lol"


def test_synth_output_is_identical_across_processes(tmp_path, config_file):
    """Determinism across interpreter runs (hash seeds, import order), not only within one."""
    out = tmp_path / "other-process"
    script = (
        "import sys; from pathlib import Path; from bench.data import get_dataset; "
        "from bench.data.synth import generate; "
        "generate(get_dataset('synth-rain'), Path(sys.argv[1]), 7, {'train_count': 3, 'test_count': 2})"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(out)], check=True, cwd=REPO, capture_output=True
    )
    args = ["--train-count", "3", "--test-count", "2", "--seed", "7"]
    here = run(config_file, "synth", "synth-rain", "--out", str(tmp_path / "in-process"), *args)
    assert here.exit_code == 0
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert len(files) == 12  # 5 pairs + synth.json + lock
    assert all((out / f).read_bytes() == (tmp_path / "in-process" / f).read_bytes() for f in files)


def test_hand_downloads_are_checked_against_the_published_checksum_and_unpacked(tmp_path):
    """CelebA's zip and partition list carry torchvision's MD5s and Drive ids; a copy placed
    by hand is checked before anything reads it, and the zip is unpacked once."""
    import zipfile

    spec = get_dataset("celeba")
    described = {item.file: item.describe() for item in spec.manual_files}
    assert "MD5 00d2c5bc6d35e252742224ab0c1e8fcb" in described["img_align_celeba.zip"]
    assert "Google Drive id 0B7EVK8r0v71pY0NSMzRuSXJEVkk" in described["list_eval_partition.txt"]
    # a stand-in zip: not the published file
    image = tmp_path / "000001.jpg"
    write_png(image, random_rgb(4, 4))
    archive = tmp_path / "root" / "img_align_celeba.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(image, "img_align_celeba/000001.jpg")
    with pytest.raises(
        BenchError, match="img_align_celeba.zip: MD5 .* the published one is 00d2c5bc"
    ):
        prepare(spec, archive.parent)
    assert not (archive.parent / "img_align_celeba").exists()
    # the same checks with this zip's own MD5 standing for the published one
    item = replace(spec.manual_files[0], md5=hashlib.md5(archive.read_bytes()).hexdigest())
    (archive.parent / "list_eval_partition.txt").write_text("000001.jpg 2\n")
    own = replace(spec, manual_files=(item,), prepare_md5={})
    prepare(own, archive.parent)
    assert (archive.parent / "test" / "000001.jpg").is_file()


def test_fetch_of_a_hand_download_lists_its_checksums(config_file):
    result = run(config_file, "fetch", "celeba")
    assert result.exit_code != 0
    assert "img_align_celeba.zip: MD5 00d2c5bc6d35e252742224ab0c1e8fcb" in result.output
