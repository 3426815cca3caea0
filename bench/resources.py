"""Where packaged resources live: the source tree when run from a checkout, else the wheel."""

from __future__ import annotations

from pathlib import Path

import bench


def manifest_dir() -> Path:
    """The folder of dataset manifests (``datasets/`` in a checkout, ``bench/_manifests`` installed)."""
    package = Path(bench.__file__).resolve().parent
    source_tree = package.parent / "datasets"
    if source_tree.is_dir():
        return source_tree
    return package / "_manifests"
