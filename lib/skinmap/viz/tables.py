"""Tables as a published book shows them: every chapter displays its DataFrames through
:func:`format_table`.

* no ``0..n`` row numbers: a ``RangeIndex`` is hidden, a meaningful index (or the columns named
  by ``index``) is shown as the first column(s);
* integer counts read as integers (``1,234``, never ``1234.0``), also in float columns whose
  values are all whole numbers (the result of a merge with missing values); years and other
  ``plain`` columns without separators;
* other numbers with ``digits`` significant digits, ``percent`` columns as percentages, missing
  values as an en dash;
* every column and row is shown (never pandas' ``...``), and a table wider than the page scrolls
  inside its own box (an inline style, so Quarto and the fallback renderer both honour it).

Captions and labels come from the cell (``#| label: tbl-...`` / ``#| tbl-cap:``), not from here.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FormattedTable", "format_table", "format_number", "status_table"]

NA_REP = "\u2013"


def format_number(value, *, digits: int = 3, percent: bool = False, integer: bool = False,
                  thousands: bool = True) -> str:
    """One cell as text: integers with thousands separators, floats with ``digits`` significant
    digits (no exponent below 1e15), percentages with one decimal, missing values as an en dash."""
    if not isinstance(value, (list, tuple, np.ndarray)) and pd.isna(value):
        return NA_REP
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)) or (integer and float(value).is_integer()):
        return f"{int(value):,}" if thousands else str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if percent:
            return f"{value:.1%}"
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        decimals = max(digits - 1 - magnitude, 0)
        return f"{value:,.{decimals}f}"
    return str(value)


def _integral(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_integer_dtype(series):
        return True
    if not pd.api.types.is_float_dtype(series):
        return False
    values = series.dropna().to_numpy(dtype=float)
    return values.size > 0 and bool(np.all(np.isfinite(values) & (values == np.round(values))))


@dataclass(frozen=True)
class FormattedTable:
    """A table ready to display: ``text`` holds every cell as its displayed string, ``numeric``
    names the columns aligned right."""

    text: pd.DataFrame
    show_index: bool
    numeric: frozenset = frozenset()

    def to_html(self) -> str:
        esc = html.escape
        right = ' style="text-align: right;"'
        names = [n if n is not None else "" for n in self.text.index.names] if self.show_index else []
        head = "".join(f"<th>{esc(str(n))}</th>" for n in names)
        head += "".join(f"<th{right if c in self.numeric else ''}>{esc(str(c))}</th>" for c in self.text.columns)
        rows, previous = [], None
        for label, values in zip(self.text.index, self.text.itertuples(index=False, name=None)):
            cells = []
            if self.show_index:
                parts = label if isinstance(label, tuple) else (label,)
                for level, part in enumerate(parts):
                    same = previous is not None and tuple(previous[: level + 1]) == tuple(parts[: level + 1])
                    cells.append(f'<th scope="row">{"" if same else esc(str(part))}</th>')
                previous = parts
            cells += [f"<td{right if c in self.numeric else ''}>{esc(str(v))}</td>"
                      for c, v in zip(self.text.columns, values)]
            rows.append(f"<tr>{''.join(cells)}</tr>")
        table = (f'<table class="skinmap-table dataframe">\n<thead><tr>{head}</tr></thead>\n'
                 f"<tbody>\n{chr(10).join(rows)}\n</tbody>\n</table>")
        return f'<div class="table-scroll" style="overflow-x: auto; max-width: 100%;">\n{table}\n</div>'

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.text.to_string(index=self.show_index)


def format_table(df: pd.DataFrame, *, index: str | Sequence[str] | None = None, digits: int = 3,
                 percent: Sequence[str] = (), integer: Sequence[str] = (), plain: Sequence[str] = (),
                 rename: dict | None = None,
                 max_rows: int | None = None) -> FormattedTable:
    """Format ``df`` for display (see the module docstring).

    Parameters
    ----------
    df : DataFrame, shape (n_rows, n_columns)
    index : str or list of str, optional
        Column(s) to show as the row labels. Without it a ``RangeIndex`` is hidden and any other
        index is shown.
    digits : int
        Significant digits of non-integer numbers.
    percent : list of str
        Columns holding fractions (0-1) to show as percentages.
    integer : list of str
        Columns to show as integers even if they are not integral (rounded).
    plain : list of str
        Integer columns shown without thousands separators (identifiers, codes); columns whose
        name contains "year" always are.
    rename : dict, optional
        Column renames for display (e.g. to add units: ``{"age": "age (years)"}``).
    max_rows : int, optional
        Show the first ``max_rows`` rows and a final row saying how many more there are.

    Returns
    -------
    FormattedTable
        Displays as an HTML table in a horizontally scrolling box (``_repr_html_``).
    """
    frame = df.copy()
    if index is not None:
        frame = frame.set_index(list([index] if isinstance(index, str) else index))
    show_index = not (isinstance(frame.index, pd.RangeIndex) and frame.index.name is None)
    percent, integer, plain = set(percent), set(integer), set(plain)
    text = pd.DataFrame(index=frame.index)
    numeric = set()
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric.add(column)
        as_int = column in integer or _integral(series)
        thousands = not (column in plain or "year" in str(column).lower())
        text[column] = [format_number(v, digits=digits, percent=column in percent, integer=as_int,
                                      thousands=thousands) for v in series.tolist()]
    if isinstance(frame.columns, pd.MultiIndex):
        text.columns = frame.columns
    if max_rows is not None and len(text) > max_rows:
        hidden = len(text) - max_rows
        text = text.iloc[:max_rows]
        levels = text.index.nlevels
        label = pd.MultiIndex.from_tuples([("\u2026",) * levels], names=text.index.names) if levels > 1 else \
            pd.Index(["\u2026"] if show_index else [len(text)], name=text.index.name)
        more = pd.DataFrame([[f"{hidden:,} more rows"] + [""] * (text.shape[1] - 1)], columns=text.columns,
                            index=label)
        text = pd.concat([text, more])
    if rename:
        text = text.rename(columns=rename)
        numeric = {rename.get(c, c) for c in numeric}
    return FormattedTable(text=text, show_index=show_index, numeric=frozenset(numeric))


def status_table(why: str, *, status: str = "not computed in this run") -> FormattedTable:
    """A one-row table shown in place of a labelled table a run cannot fill, saying why.

    A cell keeps its ``#| label: tbl-...`` and caption in every run (Quarto's cell options are
    static), so it always shows a table: its numbers and the book's cross-references do not
    depend on the data a run holds, and the reader sees why there are no rows (a run without
    the data the table needs, or a search that found nothing).

    Parameters
    ----------
    why : str
        The reason, for the reader, in plain text and short (about 60 characters: book tables do
        not wrap), e.g. naming the parameter that would supply the data.
    status : str
        What happened: ``"not computed in this run"`` (no data for it) or e.g. ``"none found"``.

    Returns
    -------
    FormattedTable
        Columns ``result`` (the status) and ``why``, one row, no row labels.
    """
    if not str(why).strip() or not str(status).strip():
        raise ValueError("a status table needs a status and a reason")
    return format_table(pd.DataFrame({"result": [str(status)], "why": [str(why)]}))
