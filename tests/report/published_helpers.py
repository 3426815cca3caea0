"""Queries over the published tables that only the tests need: one unit of the last
printed digit, a table as a data frame, and a search by method and settings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from bench.report.published import PrintedValue, PublishedCell, PublishedTable


def within_last_digit(computed: float, printed: PrintedValue) -> bool:
    """True if ``computed`` is within one unit of ``printed``'s last printed digit.

    The paper rounds some products and truncates others (Table 11: 65.88 is printed
    65.8), so one unit either way is the tightest honest tolerance.
    """
    if printed.value is None or printed.decimals is None:
        raise ValueError(f"'{printed.text}' is not a printed number")
    unit = 10.0**-printed.decimals
    return abs(computed - float(printed.value)) <= unit * (1 + 1e-9)


def table_frame(table: PublishedTable, printed: bool = False) -> pd.DataFrame:
    """One line per row: label, method, variant, source, row settings, then the columns.

    Numbers are nullable ``Float64`` with ``<NA>`` for "–"; ``printed=True`` gives the
    printed text (marks included) instead.
    """
    setting_keys = list(dict.fromkeys(k for row in table.rows for k in row.settings))
    data: dict[str, Any] = {
        "label": [row.label for row in table.rows],
        "method": [row.method for row in table.rows],
        "variant": [row.variant for row in table.rows],
        "source": [row.source for row in table.rows],
    }
    for key in setting_keys:
        data[key] = [row.settings.get(key) for row in table.rows]
    for column in table.columns:
        if printed:
            data[column.key] = [table.printed(row, column.key) for row in table.rows]
        elif column.type == "number":
            data[column.key] = pd.array(
                [row.values[column.key].value for row in table.rows], dtype="Float64"
            )
        else:
            data[column.key] = [row.values[column.key].value for row in table.rows]
    return pd.DataFrame(data)


def find_cells(
    tables: Iterable[PublishedTable],
    metric: str | None = None,
    include_unverified: bool = False,
    **criteria: Any,
) -> list[PublishedCell]:
    """Published values matching ``criteria`` (method, variant, dataset, protocol, or any
    setting such as steps=5 or sum_scale=0.01).

    Unverified, official-code and recomputed numbers are left out unless
    ``include_unverified`` is set, so they are never mistaken for published results.
    """
    found = []
    for table in tables:
        for cell in table.cells():
            if cell.row.status != "published" and not include_unverified:
                continue
            if metric is not None and cell.metric != metric:
                continue
            context = {
                "method": cell.row.method,
                "variant": cell.row.variant,
                "dataset": cell.dataset,
                "protocol": cell.protocol,
                "source": cell.row.source,
                **cell.settings,
            }
            if all(key in context and context[key] == want for key, want in criteria.items()):
                found.append(cell)
    return found
