"""The shape every protocol and metric returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class MetricResult:
    """Per-image values, aggregates, metrics that could not be computed, and provenance.

    ``unavailable`` maps a metric name to the reason it is missing (never a 0 in
    ``summary``); ``meta`` records the conventions, sample counts and weights used.
    """

    per_image: pd.DataFrame
    summary: dict[str, float]
    unavailable: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return list(self.meta.get("warnings", []))
