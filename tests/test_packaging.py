"""The wheel ships every package, the manifests and the published tables."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("bench", "baselines")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    mapped = {"bench._manifests", "bench._published"}
    assert (
        listed - found == mapped
    )  # the data packages mapped from datasets/ and reports/published/


def test_the_python_floor_has_every_feature_bench_uses():
    """bench.data.fetch extracts archives with tarfile's "data" filter, which Python gained
    in 3.11.4 (and 3.12): a lower floor would install where extraction fails."""
    import inspect
    import re

    from bench.data import fetch

    assert 'filter="data"' in inspect.getsource(fetch)
    floor = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    version = tuple(int(part) for part in re.fullmatch(r">=([\d.]+)", floor).group(1).split("."))
    assert version >= (3, 11, 4)
