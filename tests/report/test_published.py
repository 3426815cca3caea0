"""The published tables: every file loads, the data agree with the paper's own cross-references
and with the printed text in reference/published-tables.md, and bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from published_helpers import find_cells, table_frame, within_last_digit

import bench
from bench.errors import BenchError
from bench.report.published import (
    PROTOCOLS,
    PrintedValue,
    format_value,
    load_published,
    load_table,
    published_dir,
)

EXPECTED_IDS = {
    "sr3-official-readme",
    "rddm-table-1",
    "rddm-table-2",
    "rddm-table-3a",
    "rddm-table-3b",
    "rddm-table-3c",
    "rddm-table-3d",
    "rddm-table-3e",
    "rddm-table-4",
    "rddm-table-5",
    "rddm-table-6",
    "rddm-table-7",
    "rddm-table-8",
    "rddm-table-9",
    "rddm-table-10",
    "rddm-table-11a",
    "rddm-table-11b",
    "rddm-table-11c",
    "resfusion-available",
    "resfusion-table-1",
    "resfusion-table-2",
    "resfusion-table-3",
    "resfusion-table-5",
    "resfusion-table-7-istd",
    "resfusion-table-7-lol",
    "resfusion-table-7-raindrop",
    "resfusion-table-8",
}


@pytest.fixture(scope="module")
def tables():
    return load_published()


def text(tables, table_id: str, label: str, key: str, variant: str | None = None) -> str:
    table = tables[table_id]
    return table.printed(table.row(label, variant), key, marks=False)


def agree(fine: str, coarse: str) -> bool:
    """Two printings of one number agree if the finer one, rounded to the coarser, reads the same."""
    digits = len(coarse.split(".")[1]) if "." in coarse else 0
    return format_value(float(fine), digits) == coarse


# ---------------------------------------------------------------------------------------
# loading


def test_every_table_loads_with_its_file_name_as_id(tables):
    assert set(tables) == EXPECTED_IDS
    for table_id, table in tables.items():
        assert table.path.stem == table_id
        assert table.rows and table.columns
        # RDDM's paper text has no page markers; Resfusion's camera-ready text has them
        assert (table.page is not None) == (table.id.startswith("resfusion-table"))
        for column in table.columns:
            if column.kind == "metric":
                protocol = column.protocol or table.protocol
                assert protocol in (*PROTOCOLS, "none"), (table_id, column.key)
                assert column.direction in ("lower", "higher")


def test_directions_follow_the_metric(tables):
    expected = {"mae": "lower", "lpips": "lower", "fid": "lower", "psnr": "higher"}
    expected |= {"ssim": "higher", "isc": "higher"}
    seen = set()
    for table in tables.values():
        for column in table.columns:
            if column.kind == "metric":
                assert column.direction == expected[column.metric], (table.id, column.key)
                seen.add(column.metric)
    assert seen == set(expected)


def test_source_tree_folder_is_used_and_the_installed_copy_is_the_fallback(tmp_path, monkeypatch):
    assert published_dir() == Path(bench.__file__).resolve().parents[1] / "reports" / "published"
    package = tmp_path / "site-packages" / "bench"
    (package / "_published").mkdir(parents=True)
    monkeypatch.setattr(bench, "__file__", str(package / "__init__.py"))
    assert published_dir() == package / "_published"


# ---------------------------------------------------------------------------------------
# the paper's internal consistency (published-tables.md, "Internal consistency checks")


def test_istd_sm_res_n_row_is_the_same_everywhere(tables):
    # 4.67 / 30.91 / 0.962 in Table 1, 3(b), Table 5's 2Net row, Table 7's ALL columns, 11(b)
    places = [
        ("rddm-table-1", "SM-Res-N", None, ("istd_mae", "istd_psnr", "istd_ssim")),
        ("rddm-table-3b", "RDDM", None, ("mae_all", "psnr_all", "ssim_all")),
        ("rddm-table-5", "SM-Res-N-2Net", None, ("mae", "psnr", "ssim")),
        ("rddm-table-7", "RDDM", None, ("mae_all", "psnr_all", "ssim_all")),
        ("rddm-table-11b", "RDDM (80k)", None, ("mae", "psnr", "ssim")),
    ]
    for table_id, label, variant, keys in places:
        got = tuple(text(tables, table_id, label, key, variant) for key in keys)
        assert got == ("4.67", "30.91", "0.962"), table_id


def test_a_runner_key_finds_the_istd_mae_in_every_table_that_prints_it(tables):
    cells = find_cells(
        tables.values(),
        metric="mae",
        method="rddm",
        variant="sm-res-n-2net",
        dataset="istd",
        protocol="istd",
        steps=5,
        sum_scale=0.01,
        region="all",
    )
    found = {cell.table_id: cell.value.text for cell in cells}
    assert found == {
        t: "4.67"
        for t in (
            "rddm-table-1",
            "rddm-table-3b",
            "rddm-table-5",
            "rddm-table-7",
            "rddm-table-10",
            "rddm-table-11b",
            "resfusion-table-1",  # Resfusion repeats RDDM's row beside its own
        )
    }


def test_table_10_at_001_and_5_steps_equals_table_7(tables):
    row = next(
        r for r in tables["rddm-table-10"].rows if r.settings == {"sum_scale": 0.01, "steps": 5}
    )
    got = (row.values["mae_all"].text, row.values["psnr_s"].text, row.values["lpips"].text)
    assert got == ("4.67", "36.74", "0.0305")
    table7 = tuple(text(tables, "rddm-table-7", "RDDM", k) for k in ("mae_all", "psnr_s", "lpips"))
    assert table7 == got


def test_lol_sm_res_matches_tables_3c_and_11a(tables):
    assert text(tables, "rddm-table-1", "SM-Res", "lol_psnr") == "25.39"
    assert text(tables, "rddm-table-1", "SM-Res", "lol_ssim") == "0.937"
    for table_id in ("rddm-table-3c", "rddm-table-11a"):
        assert text(tables, table_id, "RDDM", "psnr") == "25.392"
        assert agree(text(tables, table_id, "RDDM", "psnr"), "25.39")
        assert text(tables, table_id, "RDDM", "ssim") == "0.937"
        # the paper's value in both; the talk's 0.134 is kept as a flagged conflict
        assert text(tables, table_id, "RDDM", "lpips") == "0.116"
    conflicts = tables["rddm-table-3c"].row("RDDM").conflicts
    assert [(c.column, c.printed, c.source) for c in conflicts] == [("lpips", "0.134", "talk")]


def test_raindrop_rows_match_tables_6_and_11c(tables):
    pairs = {"SM-Res": ("31.96", "0.9509"), "SM-Res-N": ("32.51", "0.9563")}
    table6 = {"SM-Res": "SM-Res", "SM-Res-N": "SM-Res-N-2Net"}
    table11 = {"SM-Res": "RDDM (only res)", "SM-Res-N": "RDDM"}
    for label, expected in pairs.items():
        keys1 = ("raindrop_psnr", "raindrop_ssim")
        assert tuple(text(tables, "rddm-table-1", label, k) for k in keys1) == expected
        keys6 = ("deraining_psnr", "deraining_ssim")
        assert tuple(text(tables, "rddm-table-6", table6[label], k) for k in keys6) == expected
        got11 = tuple(text(tables, "rddm-table-11c", table11[label], k) for k in ("psnr", "ssim"))
        assert got11 == expected
    assert tuple(text(tables, "rddm-table-3d", "RDDM", k) for k in ("psnr", "ssim")) == (
        "32.51",
        "0.9563",
    )


def test_gopro_two_step_row_matches_table_9_and_the_talk(tables):
    expected = ("32.40", "0.963")
    keys6 = ("deblurring_psnr", "deblurring_ssim")
    assert tuple(text(tables, "rddm-table-6", "SM-Res-N-2Net", k) for k in keys6) == expected
    table9 = tables["rddm-table-9"].row("RDDM (2 steps)")
    assert (table9.values["psnr"].text, table9.values["ssim"].text) == expected
    assert table9.settings["steps"] == 2
    assert tuple(text(tables, "rddm-table-3e", "RDDM", k) for k in ("psnr", "ssim")) == expected


def test_celeba_sm_n_equals_the_table_2_schedule_it_uses(tables):
    assert text(tables, "rddm-table-1", "SM-N", "celeba_fid") == "23.25"
    assert text(tables, "rddm-table-1", "SM-N", "celeba_is") == "2.05"
    row = tables["rddm-table-2"].row("α_t linearly decreasing, β²_t linearly increasing")
    assert (row.values["fid"].text, row.values["is"].text) == ("23.25", "2.05")
    # so Table 1's CelebA cells run that schedule, not Table 4's eq. 17 one, and both say so
    from bench.report.reproduce import table_plan

    celeba = [p for p in table_plan("rddm-table-1", tables) if p.dataset == "celeba"]
    assert celeba and all(p.options["schedule"] == "power" for p in celeba)
    assert all((p.options["alpha_shape"], p.options["beta_shape"]) == ("decreasing", "increasing") for p in celeba)  # fmt: skip
    assert any("contradicts Table 1" in note for note in tables["rddm-table-4"].notes)
    assert any("Table 2's, not Table 4's" in note for note in tables["rddm-table-1"].notes)


def test_table_notes_say_whose_finding_and_whose_split(tables):
    for part in "abc":
        assert any("bench's own finding" in n for n in tables[f"rddm-table-11{part}"].notes)
    assert any("may follow another protocol" in n for n in tables["rddm-table-11b"].notes)
    assert any("test_a is named by RDDM's README" in n for n in tables["rddm-table-3d"].notes)


def test_table_3b_rows_are_table_7s_first_nine_columns(tables):
    table3b, table7 = tables["rddm-table-3b"], tables["rddm-table-7"]
    keys = [c.key for c in table3b.columns]
    assert keys == [c.key for c in table7.columns][:9]
    for row in table3b.rows:
        twin = table7.row(row.label)
        assert [row.values[k].text for k in keys] == [twin.values[k].text for k in keys]


# ---------------------------------------------------------------------------------------
# Table 11: products from per-step values


def product_checks(tables):
    for part in ("a", "b", "c"):
        table = tables[f"rddm-table-11{part}"]
        for product in table.products:
            for row in table.rows:
                total = row.values[product.total]
                if not total.absent:
                    yield table, product, row, total


def test_table_11_products_from_unrounded_figures_match_within_one_unit(tables):
    checked = []
    for table, product, row, total in product_checks(tables):
        unrounded = row.unrounded.get(product.per_step)
        if unrounded is None:
            continue
        steps = row.values[product.steps].value
        assert within_last_digit(unrounded * steps, total), (table.id, row.label)
        # the printed per-step value is that figure, rounded or truncated
        assert within_last_digit(unrounded, row.values[product.per_step])
        checked.append((table.id, row.label))
    # every RDDM row's MACs product: 11(a) RDDM, 11(b) both, 11(c) both
    assert len(checked) == 5
    assert all(label.startswith("RDDM") for _, label in checked)


def test_table_11_products_without_unrounded_figures_fit_the_printed_per_step_interval(tables):
    # An unknown x printed as p (rounded: |x - p| <= u/2; truncated: p <= x < p + u) gives
    # a product in [(p - u/2)·n, (p + u)·n]; the printed total may sit one unit outside.
    checked = 0
    for table, product, row, total in product_checks(tables):
        if product.per_step in row.unrounded:
            continue
        per_step = row.values[product.per_step]
        steps = row.values[product.steps].value
        unit_step, unit_total = 10.0**-per_step.decimals, 10.0**-total.decimals
        low = (per_step.value - unit_step / 2) * steps - unit_total
        high = (per_step.value + unit_step) * steps + unit_total
        assert low <= total.value <= high, (table.id, row.label, product.total)
        checked += 1
    assert checked == 19  # 4 + 6 + 4 competitor products, plus the 5 RDDM rows' time products


def test_the_printed_per_step_macs_alone_would_miss_the_printed_product(tables):
    # Why the unrounded figures are needed: 32.9 × 5 = 164.5, but the paper prints 164.7.
    row = tables["rddm-table-11c"].row("RDDM (only res)")
    per_step, total = row.values["macs_per_step_g"], row.values["macs_g"]
    assert not within_last_digit(per_step.value * 5, total)
    assert "methods.md §5" in row.unrounded_source


def test_params_are_the_thop_counts_at_printed_precision(tables):
    # 7.738 is printed 7.73 and 15.476 as 15.47: truncated, so one unit, not half a unit
    rows = [r for p in "abc" for r in tables[f"rddm-table-11{p}"].rows if "params_m" in r.unrounded]
    assert len(rows) == 5
    for row in rows:
        assert within_last_digit(row.unrounded["params_m"], row.values["params_m"])


def test_garbled_paper_text_cells_are_marked_and_keep_the_talks_value(tables):
    daggers = {}
    for part in ("a", "b", "c"):
        table = tables[f"rddm-table-11{part}"]
        for row in table.rows:
            for key, garbled in row.paper_text.items():
                assert row.marks[key] == " †"
                daggers[(row.label, key)] = (garbled, row.values[key].text)
    assert daggers == {
        ("LLFlow", "params_m"): ("1742", "17.42"),
        ("LLformer", "time_s"): ("10.09", "0.09"),
        ("RDDM (80k)", "time_s"): ("10.32", "0.32"),
        ("RDDM", "macs_g"): ("1329.3", "329.3"),
    }


# ---------------------------------------------------------------------------------------
# printed precision


@pytest.mark.parametrize(
    ("table_id", "label", "printed_label", "expected"),
    [
        ("rddm-table-1", "SM-Res", "RainDrop SSIM", "0.9509"),
        ("rddm-table-3c", "RDDM", "PSNR", "25.392"),
        ("rddm-table-3c", "DCC-Net", "LPIPS", "–"),
        ("rddm-table-3c", "LLFlow", "SSIM", "0.93"),
        ("rddm-table-3d", "AttnGAN", "SSIM", "0.9170"),
        ("rddm-table-2", "Linear (DDIM)", "FID", "28.39*"),
        ("rddm-table-2", "Scaled linear", "IS", "2.00"),
        ("rddm-table-3e", "Gao et al.", "PSNR / SSIM", "30.90 / 0.935"),
        ("rddm-table-6", "SM-N", "Deblurring PSNR/SSIM", "9.49/0.087"),
        ("rddm-table-7", "CANet", "SSIM S", "–"),
        ("rddm-table-8", "SNR-Aware", "SSIM", "0.625"),
        ("rddm-table-9", "Uformer-B", "LPIPS", "0.0089"),
        ("rddm-table-10", "β̄²_T = 1, 10 steps", "LPIPS", "0.0300"),
        ("rddm-table-11a", "LLFlow", "Params (M)", "17.42 †"),
        ("rddm-table-11a", "LLFlow", "MACs (G) × steps", "286.33×1 = 286.3"),
        ("rddm-table-11b", "SR3 (80k)", "MACs (G) × steps", "155.3×100 = 15530.0"),
        ("rddm-table-11b", "SR3 (80k)", "Time (s)", "0.02×100 = 2.00"),
        ("rddm-table-11b", "ShadowDiffusion", "Time (s)", "–"),
        ("rddm-table-11c", "RDDM (only res)", "MACs (G) × steps", "32.9×5 = 164.7"),
        ("rddm-table-11c", "RDDM", "MACs (G) × steps", "65.8×5 = 329.3 †"),
        ("rddm-table-11c", "RainDiff128", "Time (s)", "0.038×50 = 1.91"),
    ],
)
def test_printed_cells_read_as_in_published_tables_md(
    tables, table_id, label, printed_label, expected
):
    table = tables[table_id]
    rows = [
        r for r, row in zip(table.printed_rows(), table.rows, strict=True) if row.label == label
    ]
    assert rows[0][printed_label] == expected


def test_every_number_round_trips_through_format_value(tables):
    count = 0
    for table in tables.values():
        for row in table.rows:
            for key, value in row.values.items():
                if table.column(key).type == "number" and not value.absent:
                    assert format_value(value.value, value.decimals) == value.text
                    count += 1
    assert count > 400


def test_our_results_print_at_the_papers_precision(tables):
    assert tables["rddm-table-3d"].format("ssim", 0.95086) == "0.9509"
    assert tables["rddm-table-3c"].format("psnr", 25.3917) == "25.392"
    assert tables["rddm-table-7"].format("lpips", None) == "–"
    assert format_value(2.0, 2) == "2.00"


def test_absent_cells_are_missing_values_not_zero(tables):
    frame = table_frame(tables["rddm-table-7"])
    assert str(frame["ssim_ns"].dtype) == "Float64"
    canet = frame.set_index("label").loc["CANet"]
    assert pd.isna(canet["psnr_all"]) and canet["mae_all"] == pytest.approx(6.15)
    printed = table_frame(tables["rddm-table-7"], printed=True).set_index("label")
    assert printed.loc["CANet", "psnr_all"] == "–"
    assert printed.loc["BMNet", "mae_s"] == "7.60"


def test_row_settings_become_frame_columns(tables):
    frame = table_frame(tables["rddm-table-10"])
    assert len(frame) == 10
    assert set(frame["steps"]) == {1, 2, 5, 10, 100}
    assert set(frame["sum_scale"]) == {0.01, 1}


# ---------------------------------------------------------------------------------------
# Resfusion: only flagged items


def test_resfusion_tables_tie_each_resolution_to_its_protocol(tables):
    """Camera-ready Table 1 (page 5): 256x256 ALL is 31.81 / 0.965 / 4.81 (istd); the
    original resolution's 30.09 / 0.932 / 5.34 (istd-origin). 4.79, once quoted beside
    30.09 by a third-party summary, is printed nowhere."""
    cells = find_cells(tables.values(), method="resfusion", dataset="istd", region="all")
    table1 = {
        (c.protocol, c.metric): c.value.text for c in cells if c.table_id == "resfusion-table-1"
    }
    assert table1 == {
        ("istd", "psnr"): "31.81", ("istd", "ssim"): "0.965", ("istd", "mae"): "4.81",
        ("istd-origin", "psnr"): "30.09", ("istd-origin", "ssim"): "0.932",
        ("istd-origin", "mae"): "5.34",
    }  # fmt: skip
    every = find_cells(tables.values(), method="resfusion", include_unverified=True)
    assert "4.79" not in {c.value.text for c in every}
    # the same Resfusion numbers wherever the paper repeats them
    table7 = tables["resfusion-table-7-istd"].row("Resfusion (ours)")
    assert (table7.values["psnr"].text, table7.values["ssim"].text) == ("31.81", "0.965")
    lol = tables["resfusion-table-7-lol"].row("Resfusion (ours)")
    original = tables["resfusion-table-2"].row("Resfusion (ours), original")
    assert original.protocol == "lol-in-rgb"
    assert [lol.values[k].text for k in ("psnr", "ssim")] == [
        original.values[k].text for k in ("psnr", "ssim")
    ]
    # what the sources hold besides the paper keeps its status
    available = tables["resfusion-available"]
    assert {row.status for row in available.rows} == {"official", "recomputed"}


# ---------------------------------------------------------------------------------------
# malformed files


GOOD = """
id = "demo"
paper = "RDDM, CVPR 2024"
table = "1"
title = "demo"
source = "paper"
location = "main text"
page = "unknown"
protocol = "istd"

[[columns]]
key = "psnr"
label = "PSNR"
metric = "psnr"
direction = "higher"
unit = "dB"
decimals = 2

[[rows]]
label = "RDDM"
method = "rddm"
values = { psnr = "30.91" }
"""


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "demo.toml"
    path.write_text(content, encoding="utf-8")
    return path


def test_the_good_sample_loads(tmp_path):
    table = load_table(write(tmp_path, GOOD))
    assert table.row("RDDM").values["psnr"] == PrintedValue("30.91", 30.91, 2)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('values = { psnr = "30.91" }', "values = { psnr = 30.91 }", "rows[0].values.psnr"),
        ('values = { psnr = "30.91" }', 'values = { psnr = "-" }', "rows[0].values.psnr"),
        ('values = { psnr = "30.91" }', "values = { }", "rows[0].values.psnr"),
        ('values = { psnr = "30.91" }', 'values = { psnr = "1", ssim = "1" }', "values.ssim"),
        ('direction = "higher"', 'direction = "up"', "columns[0].direction"),
        ('direction = "higher"', 'dirction = "higher"', "columns[0].dirction"),
        ('protocol = "istd"', 'protocol = "matlab"', "protocol"),
        ('protocol = "istd"\n', "", "columns[0].protocol"),
        ('id = "demo"', 'id = "other"', "id"),
        ('page = "unknown"', 'page = "p. 4"', "page"),
        ("decimals = 2", 'decimals = "2"', "columns[0].decimals"),
        ('method = "rddm"', 'method = "rddm"\nsource = "blog"', "rows[0].source"),
        ('method = "rddm"', 'method = "rddm"\nunrounded = { psnr = 30.912 }', "unrounded_source"),
        ('title = "demo"', "title = ", "not valid TOML"),
    ],
)
def test_a_malformed_file_names_the_file_and_the_key(tmp_path, old, new, key):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(BenchError) as raised:
        load_table(path)
    message = str(raised.value)
    assert str(path) in message and key in message


def test_a_folder_without_tables_is_an_error(tmp_path):
    with pytest.raises(BenchError, match="no published tables"):
        load_published(tmp_path)


def test_a_malformed_file_fails_the_whole_load(tmp_path):
    (tmp_path / "demo.toml").write_text(GOOD.replace('"30.91"', "30.91"), encoding="utf-8")
    with pytest.raises(BenchError, match=r"demo\.toml: rows\[0\]\.values\.psnr"):
        load_published(tmp_path)


def test_generation_columns_read_the_runs_own_protocol(tables):
    """A CelebA FID or IS column of RDDM Table 1 compares with what a generation run logs
    under its protocol, celeba/fid and celeba/isc, like any restoration column."""
    from bench.report.build import metric_key

    table = tables["rddm-table-1"]
    row = table.rows[0]
    keys = {metric_key(table.context(row, table.column(k))) for k in ("celeba_fid", "celeba_is")}
    assert keys == {"celeba/fid", "celeba/isc"}


def test_sr3_readme_table_is_the_official_code_s_and_names_its_datasets(tables):
    """The README of SR3's official re-implementation prints 16->128 PSNR 23.26, SSIM 0.675
    and 64->512 PSNR 19.87, SSIM 0.445; each column names the dataset and protocol a run of
    that configuration logs."""
    from bench.data import get_dataset

    table = tables["sr3-official-readme"]
    assert table.source == "secondary"
    printed = {key: text(tables, "sr3-official-readme", "SR3 (official re-implementation)", key) for key in ("psnr_16_128", "ssim_16_128", "psnr_64_512", "ssim_64_512")}  # fmt: skip
    assert printed == {"psnr_16_128": "23.26", "ssim_16_128": "0.675", "psnr_64_512": "19.87", "ssim_64_512": "0.445"}  # fmt: skip
    for column in table.columns:
        spec = get_dataset(column.dataset)
        assert (spec.protocol, spec.task, spec.super_resolution.scale) == ("sr3-faces", "super-resolution", 8)  # fmt: skip
