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
