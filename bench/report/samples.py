"""The report's sample grids: for each dataset and profile, the first test images with the
input, every method's output and the ground truth side by side at the files' size.

Read from the runs' ``grid/`` artifacts (the tiles a cell logs) and per-image scores, so the
report needs nothing but the tracking store. A run without tiles (an older harness) gets a
grey column that says so.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bench.files import write_image
from bench.image_grid import Tile, labelled_grid, per_image_caption
from bench.report.runs import Store, TrackedRun
from bench.report.summary import Group, method_rows, summary_groups
from bench.tracking import mlflow_client

TILE = re.compile(r"(?P<name>.+)__(?P<role>input|output|target)\.png")


def _tiles(client, run: TrackedRun) -> tuple[dict[str, dict[str, np.ndarray]], pd.DataFrame]:
    """The run's tiles by image name and role, and its per-image scores (empty when absent)."""
    found: dict[str, dict[str, np.ndarray]] = {}
    try:
        folder = Path(client.download_artifacts(run.run_id, "grid"))
        for path in sorted(folder.glob("*.png")):
            if match := TILE.fullmatch(path.name):
                found.setdefault(match["name"], {})[match["role"]] = np.asarray(
                    Image.open(path).convert("RGB")
                )
        scores = pd.read_csv(client.download_artifacts(run.run_id, "per_image.csv"))
    except Exception:  # an older run without tiles or scores: drawn as a grey column
        return found, pd.DataFrame()
    return found, scores


def _first(columns: list, name: str, role: str) -> np.ndarray | None:
    """The ``role`` tile of image ``name`` from the first run that logged it: the input and
    the ground truth are the same for every method."""
    return next((t[name][role] for _, t, _, _ in columns if role in t.get(name, {})), None)


def _file_name(group: Group) -> str:
    return "samples-" + re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(group)) + ".png"


def comparison_grids(store: Store, folder: Path) -> dict[Group, str]:
    """Draw one grid per (dataset, profile) into ``folder``; the file name of each drawn."""
    client = mlflow_client(store.uri)
    drawn: dict[Group, str] = {}
    for group, runs in summary_groups(store).items():
        columns = []  # (label, tiles, scores, protocol)
        for label, members in method_rows(runs):
            run = members[0]  # the lowest seed
            tiles, scores = _tiles(client, run)
            columns.append((label, tiles, scores, run.protocol or ""))
        names = sorted({name for _, tiles, _, _ in columns for name in tiles})
        if not names:
            continue
        rows = []
        for name in names:
            row = [Tile(_first(columns, name, "input"), name)]
            for _, tiles, scores, protocol in columns:
                image = tiles.get(name, {}).get("output")
                caption = per_image_caption(protocol, scores, name) if image is not None else "no tile logged"  # fmt: skip
                row.append(Tile(image, caption))
            row.append(Tile(_first(columns, name, "target")))
            rows.append(row)
        headers = ["input", *(label for label, *_ in columns), "ground truth"]
        write_image(folder / _file_name(group), labelled_grid(headers, rows))
        drawn[group] = _file_name(group)
    return drawn
