"""`skinmap.viz.tables.format_table`: how every chapter's tables read on the page."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from skinmap.viz.tables import format_number, format_table


def _cells(markup: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", markup, flags=re.S)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in rows]


def test_range_index_is_hidden_and_a_named_index_is_shown():
    df = pd.DataFrame({"dataset": ["HAM", "PH2"], "rows": [10015, 200]})
    plain = format_table(df).to_html()
    assert _cells(plain) == [["dataset", "rows"], ["HAM", "10,015"], ["PH2", "200"]]
    indexed = format_table(df, index="dataset").to_html()
    assert _cells(indexed) == [["dataset", "rows"], ["HAM", "10,015"], ["PH2", "200"]]
    assert indexed.count('<th scope="row">') == 2
    assert _cells(format_table(df.set_index("dataset")).to_html())[1] == ["HAM", "10,015"]


def test_integers_stay_integers_even_after_missing_values_made_them_float():
    df = pd.DataFrame({"n": [3.0, np.nan, 1200.0], "ratio": [0.5, 0.25, 2.0], "release_year": [2016, 2017, 2018]})
    cells = _cells(format_table(df).to_html())
    assert [row[0] for row in cells[1:]] == ["3", "\u2013", "1,200"]
    assert [row[1] for row in cells[1:]] == ["0.500", "0.250", "2.00"]  # not integral: 3 significant digits
    assert [row[2] for row in cells[1:]] == ["2016", "2017", "2018"]  # years without separators


def test_numbers_percentages_and_missing_values():
    assert format_number(0.012345) == "0.0123"
    assert format_number(123456.7) == "123,457"
    assert format_number(0.0) == "0"
    assert format_number(0.0789, percent=True) == "7.9%"
    assert format_number(pd.NA) == format_number(None) == format_number(float("nan")) == "\u2013"
    assert format_number(np.int64(5)) == "5" and format_number(True) == "yes"


def test_wide_tables_scroll_in_their_own_box_and_nothing_is_elided():
    wide = pd.DataFrame(np.arange(3 * 40).reshape(3, 40), columns=[f"column_{i}" for i in range(40)])
    markup = format_table(wide)._repr_html_()
    assert markup.startswith('<div class="table-scroll" style="overflow-x: auto; max-width: 100%;">')
    assert "..." not in markup and len(_cells(markup)[0]) == 40


def test_long_tables_say_how_many_rows_are_not_shown():
    df = pd.DataFrame({"label": list("abcdef"), "rows": range(6)})
    cells = _cells(format_table(df, index="label", max_rows=4).to_html())
    assert [row[0] for row in cells[1:]] == ["a", "b", "c", "d", "\u2026"]
    assert cells[-1][1] == "2 more rows"


def test_numeric_columns_align_right_and_rename_adds_units():
    df = pd.DataFrame({"dataset": ["a"], "age": [41.5]})
    markup = format_table(df, rename={"age": "age (years)"}).to_html()
    assert '<th style="text-align: right;">age (years)</th>' in markup
    assert '<td style="text-align: right;">41.5</td>' in markup and "<td>a</td>" in markup


def test_a_status_table_keeps_a_labelled_table_numbered_and_says_why():
    """A cell whose run has no data for its table shows a status table: the renderer numbers it as a table,
    without the 'table label on a cell without a table output' warning an empty cell gets."""
    import pytest
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from skinmap.book.site.assemble import assemble_chapter
    from skinmap.viz.tables import status_table

    table = status_table("no Fitzpatrick17k metadata table (parameter fitzpatrick17k_csv)")
    assert _cells(table.to_html()) == [["result", "why"],
                                       ["not computed in this run", "no Fitzpatrick17k metadata table (parameter "
                                                                    "fitzpatrick17k_csv)"]]
    assert _cells(status_table("none at 0.95", status="none found").to_html())[1] == ["none found", "none at 0.95"]
    with pytest.raises(ValueError):
        status_table("  ")

    def cell(label, outputs):
        return new_code_cell(f"#| label: {label}\n#| tbl-cap: \"Counts\"\nshow()", outputs=outputs)

    shown = new_output("display_data", data={"text/html": table.to_html(), "text/plain": repr(table)})
    doc = assemble_chapter(new_notebook(cells=[cell("tbl-a-empty", []), cell("tbl-a-status", [shown])]),
                           chapter_number=1, page="01-a.html")
    assert [(t.label, t.number) for t in doc.targets if t.kind == "tbl"] == [("tbl-a-status", "1.1")]
    assert any("tbl-a-empty" in w and "without a table output" in w for w in doc.warnings)
    assert not any("tbl-a-status" in w for w in doc.warnings)
    assert "not computed in this run" in doc.markdown
