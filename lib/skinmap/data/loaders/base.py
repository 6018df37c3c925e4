"""What every loader shares: finding files under a data root, reading tables defensively, and
turning a raw frame into catalog rows (harmonise, probe images, caption).

A loader module defines ``DATASET`` (its registry name), ``find(index) -> bool`` (are its tables
under this root?) and ``load(root, issues=None, index=None) -> DataFrame`` in the catalog schema.
Files are found by their *official names* anywhere under the root, so both the providers' own
layouts and the project's mini-atlas layout (``metadata/`` for tables, ``images/<Dataset>/``)
work. Images are looked up only inside the folders that belong to the dataset, because one ISIC
image id can appear under several datasets' folders. Folders reached through symbolic links are
walked too (a data root of links to datasets stored elsewhere), each real folder once.

Tables are read as UTF-8 (with or without a byte-order mark) or as UTF-16 with a byte-order mark;
anything else (a Latin-1 export, say) is not guessed: the table is skipped and the issue names the
first line that is not UTF-8.
"""

from __future__ import annotations

import codecs
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from skinmap.data.captions import template_captions
from skinmap.data.harmonize import harmonize_frame
from skinmap.data.registry import registry_entry
from skinmap.data.images import IMAGE_SUFFIXES, probe_image
from skinmap.data.issues import IssueLog

__all__ = ["FileIndex", "read_table", "finish", "image_lookup", "one_hot_label", "attach_images", "prepare", "first_line",
           "table_with_header", "open_table"]


def _folder_key(path: str) -> tuple[int, int] | None:
    """Identity of the folder a path leads to (device, inode), None when it cannot be reached."""
    try:
        st = os.stat(path)  # follows symbolic links
    except OSError:
        return None
    return st.st_dev, st.st_ino


class FileIndex:
    """All files under a root, walked once (names compared case-insensitively).

    Symbolic links to folders are followed; a folder reached twice (a link back to an ancestor, or
    two links to one folder) is walked only the first time, so link loops terminate. Paths keep the
    name they were reached by (a file under a linked folder is listed under the link).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"data root {self.root} does not exist or is not a folder")
        self.files: list[Path] = []
        self.dirs: list[Path] = []
        self._real_dirs: list[str] = []  # per file: the real path of its folder, with a trailing separator
        seen = {_folder_key(str(self.root))}
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            keep = []
            for d in sorted(dirnames):
                key = None if d.startswith(".") else _folder_key(os.path.join(dirpath, d))
                if key is not None and key not in seen:
                    seen.add(key)
                    keep.append(d)
            dirnames[:] = keep
            base = Path(dirpath)
            self.dirs.extend(base / d for d in dirnames)
            names = [f for f in sorted(filenames) if not f.startswith(".")]
            self.files.extend(base / f for f in names)
            self._real_dirs.extend([os.path.realpath(dirpath) + os.sep] * len(names))
        self._by_name: dict[str, list[Path]] = {}
        for f in self.files:
            self._by_name.setdefault(f.name.lower(), []).append(f)

    def named(self, *names: str) -> list[Path]:
        """Files with any of these exact names (case-insensitive), in walk order."""
        out: list[Path] = []
        for name in names:
            out.extend(self._by_name.get(name.lower(), []))
        return out

    def first(self, *names: str) -> Path | None:
        hits = self.named(*names)
        return hits[0] if hits else None

    def dirs_named(self, *names: str) -> list[Path]:
        wanted = {n.lower() for n in names}
        return [d for d in self.dirs if d.name.lower() in wanted]

    def files_under(self, folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[Path]:
        """Files with one of ``suffixes`` anywhere below ``folder`` (compared by real path, so a
        folder given through a link and files listed through another name still match)."""
        suffixes = tuple(s.lower() for s in suffixes)
        prefix = os.path.realpath(folder) + os.sep
        return [f for f, real in zip(self.files, self._real_dirs)
                if real.startswith(prefix) and f.suffix.lower() in suffixes]


def image_lookup(index: FileIndex, folders: Iterable[Path]) -> dict[str, Path]:
    """Map image stem (file name without suffix) -> path for every image inside ``folders``."""
    out: dict[str, Path] = {}
    for folder in folders:
        for f in index.files_under(folder):
            out.setdefault(f.stem, f)
    return out


class TableTextError(ValueError):
    """A table whose bytes are not text in a supported encoding; ``line`` is 1-based."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def table_text(path: Path) -> str:
    """The text of a table file: UTF-8 (a leading byte-order mark dropped) or UTF-16 with a
    byte-order mark. Raises :class:`TableTextError` naming the first line that is neither."""
    data = Path(path).read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise TableTextError(f"{path.name} starts with a UTF-16 byte-order mark but is not valid UTF-16 "
                                 f"({exc.reason})") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        if b"\x00" in data[:4096]:
            hint = "it looks like UTF-16 without a byte-order mark"
        else:
            hint = "it looks like Latin-1 / Windows-1252"
        raise TableTextError(f"{path.name} is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} "
                             f"({hint}); re-save the table as UTF-8", line) from None


_DELIMITERS = (",", ";", "\t", "|")
_PARSER_LINE = re.compile(r"\bline (\d+)\b")


def _data_row(line: int | None, header: int | None) -> int | None:
    """1-based data row of a 1-based file line (the header line is not a data row)."""
    if line is None:
        return None
    return line - 1 if header == 0 and line > 1 else line if header is None else None


def _delimiter_hint(columns: list[str], sep: str) -> str:
    """A sentence naming the delimiter a one-column header seems to use, or ``""``."""
    if len(columns) != 1:
        return ""
    counts = {d: columns[0].count(d) for d in _DELIMITERS if d != sep}
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        return ""
    return (f"; the header looks {best!r}-separated, but this table is read as {sep!r}-separated "
            f"(re-save it with {sep!r})")


def read_table(
    path: Path,
    dataset: str,
    issues: IssueLog,
    *,
    required: Iterable[str],
    optional: Iterable[str] = (),
    sep: str = ",",
    header: int | None = 0,
    names: list[str] | None = None,
) -> pd.DataFrame | None:
    """Read a provider table as strings, exactly as distributed (LF or CRLF).

    Adds ``source_file`` (absolute path) and ``source_row`` (1-based data row). A table that
    cannot be decoded (see :func:`table_text`) or parsed, or that is empty or has no data row, is
    recorded as ``unreadable_table`` (naming the dataset, the file and, where known, the row) and
    returns None so the caller skips the table. A missing required column is recorded as
    ``missing_column`` (naming file and column, and the delimiter when the header looks like
    another one) and also returns None; a missing optional column is added as NA and recorded once.
    """
    def skip(reason: str, line: int | None = None) -> None:
        issues.add("unreadable_table", dataset, str(path), _data_row(line, header),
                   message=f"{dataset}: {reason}; table skipped")

    try:
        text = table_text(path)
    except OSError as exc:
        skip(f"cannot read {path.name}: {exc}")
        return None
    except TableTextError as exc:
        skip(str(exc), exc.line)
        return None
    if not text.strip():
        skip(f"{path.name} is empty")
        return None
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, header=header, names=names, dtype=str, keep_default_na=False,
                         na_values=[], skipinitialspace=True)
    except (ValueError, pd.errors.ParserError) as exc:
        line = _PARSER_LINE.search(str(exc))
        skip(f"cannot parse {path.name}: {exc}", int(line.group(1)) if line else None)
        return None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        hint = _delimiter_hint(list(df.columns), sep)
        for c in missing:
            issues.add("missing_column", dataset, str(path), column=c,
                       message=f"{dataset}: required column {c!r} not found in {path.name} "
                               f"(columns are {list(df.columns)}){hint}; table skipped")
        return None
    if df.empty:
        skip(f"{path.name} has a header but no data rows")
        return None
    for c in optional:
        if c not in df.columns:
            issues.add("missing_optional_column", dataset, str(path), column=c,
                       message=f"{dataset}: optional column {c!r} not found in {path.name}; field left NA")
            df[c] = ""
    df = df.replace("", pd.NA)
    df["source_file"] = str(path.resolve())
    df["source_row"] = range(1, len(df) + 1)
    return df


def finish(
    raw: pd.DataFrame,
    dataset: str,
    issues: IssueLog,
    *,
    entry: dict | None = None,
    probe: bool = True,
    decode: bool = False,
    report_absent: bool = True,
) -> pd.DataFrame:
    """Raw loader frame -> catalog frame: harmonise fields, read image sizes, write captions.

    ``raw["path"]`` holds the image path or NA. Unreadable or truncated images get path NA and an
    issue; images listed but absent are recorded as ``image_absent`` when ``report_absent`` (a
    dataset distributed without any images does not flag every row).
    """
    entry = entry if entry is not None else registry_entry(dataset)
    raw = raw.reset_index(drop=True).copy()
    if "path" not in raw.columns:
        raw["path"] = pd.NA
    raw["path"] = raw["path"].map(lambda p: str(p) if isinstance(p, (str, Path)) else pd.NA)
    dup = raw["image_id"].duplicated(keep="first") & raw["image_id"].notna()
    if dup.any():
        issues.add_rows("duplicate_id", dataset, raw[dup], column="image_id", values=raw.loc[dup, "image_id"])
        raw = raw[~dup].reset_index(drop=True)
    if report_absent and "_listed_file" in raw.columns:
        absent = raw["path"].isna()
        if absent.any():
            issues.add_rows("image_absent", dataset, raw[absent], column="image", values=raw.loc[absent, "_listed_file"])
    widths, heights = [pd.NA] * len(raw), [pd.NA] * len(raw)
    if probe:
        has = raw.index[raw["path"].notna()]
        # progress only on a terminal (None) and for large folders; never in rendered chapters
        for i in tqdm(has, desc=f"probe {dataset}", disable=True if len(has) < 2000 else None, leave=False):
            w, h, problem, reason = probe_image(raw.at[i, "path"], decode=decode)
            if problem is not None:
                # unreadable images name their reason (a decompression bomb says so); truncated ones
                # keep the kind's standing description
                message = f"{dataset}: image {raw.at[i, 'path']} {reason}; path set to NA" if problem == \
                    "unreadable_image" else ""
                issues.add(problem, dataset, raw.at[i, "source_file"], int(raw.at[i, "source_row"]),
                           column="path", value=raw.at[i, "path"], message=message)
                raw.at[i, "path"] = pd.NA
            else:
                widths[i], heights[i] = w, h
    raw["width"], raw["height"] = widths, heights
    out = harmonize_frame(raw, dataset, entry, issues)
    out["caption"] = template_captions(out)
    return out


def first_line(path: Path) -> str:
    """The first line of a table (for sniffing its header or delimiter); ``""`` when the file
    cannot be read or decoded (:func:`read_table` then reports why)."""
    try:
        text = table_text(path)
    except (OSError, TableTextError):
        return ""
    return text.split("\n", 1)[0]


def table_with_header(index: FileIndex, names, signature, *, skip_generic: bool = False) -> Path | None:
    """The first file named one of ``names`` (in that order) whose header line contains every
    column of ``signature``: how a loader tells its table from another dataset's file of the same
    common name (``meta.csv``, ``label.csv``). ``skip_generic`` passes over files that sit next to
    a ``dataset.yml`` (the generic layout's ``metadata.csv``)."""
    for name in names:
        for candidate in index.named(name):
            if skip_generic and (candidate.parent / "dataset.yml").exists():
                continue
            if all(col in first_line(candidate) for col in signature):
                return candidate
    return None


def open_table(
    table: Path | None, index: FileIndex, issues: IssueLog, dataset: str, missing: str, **read_kwargs
) -> pd.DataFrame | None:
    """A loader's main table read with :func:`read_table`, or ``None`` with the reason logged.

    ``table=None`` (the loader found no such file under the root) is logged once as a
    ``missing_file`` issue with the message ``"<dataset>: <missing>"``.
    """
    if table is None:
        issues.add("missing_file", dataset, str(index.root), message=f"{dataset}: {missing}")
        return None
    return read_table(table, dataset, issues, **read_kwargs)


def prepare(root, issues: IssueLog | None, index: FileIndex | None) -> tuple[FileIndex, IssueLog]:
    """The file index and issue log a loader works with (built when not given)."""
    return (index if index is not None else FileIndex(root)), (issues if issues is not None else IssueLog())


def one_hot_label(df: pd.DataFrame, columns: Iterable[str]) -> pd.Series:
    """The column name holding 1 in each row of a one-hot ground-truth table (NA if none).

    ISIC ground truths store ``1.0``/``0.0`` per class column; a row with no 1 gets NA.
    """
    columns = list(columns)
    values = df[columns].apply(pd.to_numeric, errors="coerce").fillna(0.0)
    hit = values.to_numpy() >= 0.5
    labels = [columns[row.argmax()] if row.any() else None for row in hit]
    return pd.Series(labels, index=df.index, dtype="object")


def attach_images(df: pd.DataFrame, lookup: dict[str, Path], key: str = "image_id") -> pd.DataFrame:
    """Add ``path`` (image file or NA) and ``_listed_file`` (what was looked for) by id."""
    df = df.copy()
    df["path"] = [lookup.get(str(k), pd.NA) if pd.notna(k) else pd.NA for k in df[key]]
    df["_listed_file"] = df[key].astype(str)
    return df
