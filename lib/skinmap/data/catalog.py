"""Build the catalog: find every dataset under a data root, load it, de-duplicate by identifier.

:func:`build_catalog` discovers datasets by their official file names (``loaders/``) and by the
generic ``dataset.yml`` layout, loads each one (a broken table, image or ``dataset.yml`` is reported
with its dataset, file and row, never fatal to the other datasets; only input that leaves nothing to
build raises :class:`~skinmap.data.issues.DataInputError`), and merges re-releases of the same image
with :func:`dedup_by_identifier` (methods.md Sec. 1:
"identifier-based de-duplication ... keeping one canonical instance per identifier").

Datasets that share an *id namespace* (registry column ``id_namespace``; all ISIC challenge
releases and HAM10000 share ``ISIC``) are matched on ``image_id``. For each identifier the
canonical row is the one (1) with an image file on disk, (2) from the earliest release, (3) with
the most metadata filled, (4) by dataset name. Its missing fields are filled from the other
occurrences (the label block -- diagnosis and ICD fields -- is taken together from the first
occurrence that has a label), ``release_year`` becomes the earliest release of the identifier (the
year the image first became public), and ``also_in`` lists the other occurrences' uids.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skinmap.data.captions import template_captions
from skinmap.data.registry import registry, registry_entry
from skinmap.data.issues import ISSUE_KINDS, DataInputError, IssueLog
from skinmap.data.loaders import generic, official_datasets, official_loader
from skinmap.data.loaders.base import FileIndex
from skinmap.data.schema import CATALOG_COLUMNS, conform, empty_catalog, validate_catalog

__all__ = ["CatalogReport", "build_catalog", "dedup_by_identifier", "summarize", "COVERAGE_FIELDS"]

COVERAGE_FIELDS = ("diagnosis", "icd10_code", "fst", "age", "sex", "body_site", "origin_country",
                   "origin_continent", "lesion_id", "patient_id", "split", "path")
# fields a canonical row may take from another release of the same image (``split`` is not one of
# them: a split is defined by its own release)
_FILL_FIELDS = ("lesion_id", "patient_id", "fst", "fst_group", "age", "age_group", "sex", "body_site",
                "origin_country", "origin_continent")
_LABEL_BLOCK = ("diagnosis", "icd10_code", "icd10_block", "icd10_chapter")


@dataclass
class CatalogReport:
    """What the build did: datasets, row counts before/after de-duplication, bad input."""

    data_root: str
    datasets_found: list[str]
    datasets_missing: list[str]
    rows_loaded: int
    rows_after_dedup: int
    dedup: pd.DataFrame  # per dataset: rows_loaded, removed_as_duplicate, rows_kept, fields_filled
    issues: pd.DataFrame  # one row per problem (skinmap.data.issues)
    unmapped_labels: pd.DataFrame  # dataset, diagnosis, rows
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def duplicates_removed(self) -> int:
        return self.rows_loaded - self.rows_after_dedup

    def issue_counts(self) -> pd.DataFrame:
        """Rows per (dataset, kind) of bad input."""
        if self.issues.empty:
            return pd.DataFrame(columns=["dataset", "kind", "rows"])
        return self.issues.groupby(["dataset", "kind"]).size().rename("rows").reset_index()

    def to_dict(self) -> dict:
        counts = self.issue_counts()
        return {
            "data_root": self.data_root,
            "datasets_found": self.datasets_found,
            "datasets_missing": self.datasets_missing,
            "rows_loaded": self.rows_loaded,
            "rows_after_dedup": self.rows_after_dedup,
            "duplicates_removed": self.duplicates_removed,
            "dedup": json.loads(self.dedup.to_json(orient="records")),
            "issue_counts": json.loads(counts.to_json(orient="records")),
            "issue_kinds": ISSUE_KINDS,
            "unmapped_labels": json.loads(self.unmapped_labels.to_json(orient="records")),
        }


def _priority_sort(df: pd.DataFrame) -> pd.DataFrame:
    filled = df[list(_FILL_FIELDS) + ["diagnosis"]].notna().sum(axis=1)
    order = pd.DataFrame({
        "_no_path": df["path"].isna().astype(int),
        "_year": df["release_year"].fillna(9999).astype(int),
        "_filled": -filled,
        "_dataset": df["dataset"].astype(str),
    }, index=df.index)
    return df.loc[order.sort_values(["_no_path", "_year", "_filled", "_dataset"], kind="stable").index]


def dedup_by_identifier(catalog: pd.DataFrame, namespaces: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge rows that are the same image under one id namespace (see module docstring).

    ``namespaces`` maps dataset -> id namespace (datasets not listed are their own namespace).
    Returns the de-duplicated catalog (schema order, original row order of canonical rows) and a
    per-dataset table ``dataset, rows_loaded, removed_as_duplicate, rows_kept, fields_filled``.
    """
    df = catalog.reset_index(drop=True)
    ns = df["dataset"].map(lambda d: namespaces.get(d, d)).astype(str)
    key = ns + "\x1f" + df["image_id"].astype(str)
    dup_mask = key.duplicated(keep=False) & df["image_id"].notna()
    loaded = df.groupby("dataset").size()
    filled_per_dataset: dict[str, int] = {}
    if dup_mask.any():
        multi = df[dup_mask].copy()
        multi["_key"] = key[dup_mask]
        multi = _priority_sort(multi)
        groups = multi.groupby("_key", sort=False)
        canon = groups.head(1).set_index("_key")
        coalesced = groups[list(_FILL_FIELDS)].first()
        labelled = multi[multi["diagnosis"].notna()].groupby("_key", sort=False)[list(_LABEL_BLOCK)].head(1)
        labelled = labelled.set_index(multi.loc[labelled.index, "_key"])
        before = canon[list(_FILL_FIELDS) + list(_LABEL_BLOCK)].notna().sum(axis=1)
        for col in _FILL_FIELDS:
            canon[col] = canon[col].fillna(coalesced[col])
        no_label = canon["diagnosis"].isna() & canon.index.isin(labelled.index)
        for col in _LABEL_BLOCK:
            canon.loc[no_label, col] = labelled.loc[canon.index[no_label], col].to_numpy()
        after = canon[list(_FILL_FIELDS) + list(_LABEL_BLOCK)].notna().sum(axis=1)
        for d, n in (after - before).groupby(canon["dataset"]).sum().items():
            filled_per_dataset[str(d)] = int(n)
        canon["release_year"] = groups["release_year"].min().astype("Int64")
        uids = groups["uid"].agg(list)
        canon["also_in"] = [";".join(u for u in uids[k] if u != cu) for k, cu in zip(canon.index, canon["uid"])]
        canon = canon.reset_index(drop=True)
        canon["caption"] = template_captions(canon)
        canonical_uids = set(canon["uid"])
        keep_rows = df[~dup_mask]
        first_pos = {u: i for i, u in enumerate(df["uid"])}
        canon["_pos"] = canon["uid"].map(first_pos)
        keep_rows = keep_rows.assign(_pos=keep_rows.index)
        out = pd.concat([keep_rows, canon], ignore_index=True).sort_values("_pos", kind="stable")
        out = out.drop(columns="_pos")
        removed = df[dup_mask & ~df["uid"].isin(canonical_uids)].groupby("dataset").size()
    else:
        out = df
        removed = pd.Series(dtype="int64")
    out = conform(out)
    kept = out.groupby("dataset").size()
    table = pd.DataFrame({"rows_loaded": loaded}).join(removed.rename("removed_as_duplicate")).join(
        kept.rename("rows_kept"))
    table = table.fillna(0).astype("int64")
    table["fields_filled"] = [filled_per_dataset.get(str(d), 0) for d in table.index]
    table = table.rename_axis("dataset").reset_index()
    return out, table


def summarize(catalog: pd.DataFrame, dedup: pd.DataFrame | None = None, entries: dict | None = None) -> pd.DataFrame:
    """Per-dataset summary: release year, modality, licence, rows, images, coverage of every field."""
    entries = entries or {}
    rows = []
    for name, sub in catalog.groupby("dataset", sort=False):
        entry = entries.get(name, {})
        row = {
            "dataset": name,
            "release_year": entry.get("release_year", sub["release_year"].min()),
            "modality": ", ".join(sorted(sub["modality"].dropna().unique())),
            "origin": entry.get("origin_note") or entry.get("origin_country"),
            "license": entry.get("license"),
            "rows": len(sub),
            "images": int(sub["path"].notna().sum()),
            "metadata_only": int(sub["path"].isna().sum()),
            "n_diagnoses": int(sub["diagnosis"].nunique()),
        }
        for f in COVERAGE_FIELDS:
            row[f"coverage_{f}"] = float(sub[f].notna().mean()) if len(sub) else 0.0
        rows.append(row)
    summary = pd.DataFrame(rows)
    if dedup is not None and not summary.empty:
        summary = summary.merge(dedup, on="dataset", how="left")
    if not summary.empty:
        summary["release_year"] = pd.to_numeric(summary["release_year"]).astype("Int64")
        summary = summary.sort_values(["release_year", "dataset"]).reset_index(drop=True)
    return summary


def _discover(index: FileIndex, issues: IssueLog) -> tuple[dict[str, dict], dict[str, Path]]:
    """Every dataset under the root: name -> registry entry (official or ``dataset.yml``), sorted by
    release year then name, and name -> folder for the generic ones.

    A generic dataset named like an official dataset that is also found would silently shadow it:
    that is refused with a :class:`DataInputError` naming both.
    """
    generic_found = generic.find_generic(index, issues)
    official_found = [d for d in official_datasets() if official_loader(d).find(index)]
    clash = [d for d in official_found if d in generic_found]
    if clash:
        d = clash[0]
        raise DataInputError(
            f"the dataset folder {generic_found[d]} (dataset.yml) is named {d!r} like the official dataset {d!r}, "
            f"which is also found under {index.root} in its official layout; one name cannot mean two datasets: "
            f"give the folder another `name` in {generic_found[d] / 'dataset.yml'} (e.g. '{d}-local')")
    entries = {d: registry_entry(d) for d in official_found}
    entries.update({d: generic.read_entry(folder) for d, folder in generic_found.items()})
    years = {d: e.get("release_year") for d, e in entries.items()}
    order = sorted(entries, key=lambda d: (int(years[d]) if years[d] is not None else 9999, d))
    return {d: entries[d] for d in order}, generic_found


def _check_request(datasets: list[str] | None, found: list[str], root: Path) -> None:
    """Refuse a request that can only give an empty catalog: no dataset, or none that is there."""
    if datasets is None:
        return
    if len(datasets) == 0:
        raise DataInputError("parameter 'datasets' is an empty list, so there is nothing to read; "
                             f"list dataset names, or leave it unset (null) to read every dataset under {root}")
    if not set(datasets) & set(found):
        known = sorted(set(found) | set(registry()["dataset"]))
        hints = [f"{d!r} -> did you mean {close[0]!r}?" for d in datasets
                 if (close := difflib.get_close_matches(d, known, n=1))]
        raise DataInputError(
            f"parameter 'datasets': none of {list(datasets)} is found under {root}. "
            f"Found there: {found or 'nothing'}." + (f" {'; '.join(hints)}" if hints else ""))


def _load_one(name: str, folder: Path | None, index: FileIndex, issues: IssueLog, probe: bool,
              decode: bool) -> pd.DataFrame:
    """One dataset's catalog rows; a dataset whose loading fails is recorded and gives no rows
    (its row-level issues recorded before the failure are dropped: none of its rows is kept)."""
    mark = len(issues)
    try:
        if folder is not None:
            return generic.load(folder, issues, index, probe=probe, decode=decode)
        return official_loader(name).load(index.root, issues, index, probe=probe, decode=decode)
    except (ValueError, KeyError, OSError) as exc:  # one broken dataset must not stop the others
        del issues.records[mark:]
        where = folder if folder is not None else index.root
        issues.add("unreadable_table", name, str(where),
                   message=f"{name}: loading failed ({type(exc).__name__}: {exc}); dataset skipped")
        return empty_catalog()


def _nothing_loaded(root: Path, found: list[str], issues: IssueLog) -> DataInputError:
    """The error for a build that loaded no row at all, listing what went wrong per dataset."""
    if not found:
        official = ", ".join(official_datasets())
        problems = [r["message"] for r in issues.records]
        return DataInputError(
            f"no dataset found under {root}: expected an official layout ({official}) or folders holding a "
            "dataset.yml and a metadata.csv (the generic layout)"
            + ("; problems: " + " | ".join(problems[:10]) if problems else ""))
    problems = [f"{r['dataset']}: {r['message']}" if not r["message"].startswith(f"{r['dataset']}:") else r["message"]
                for r in issues.records]
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return DataInputError(f"no catalog row could be loaded from {root} (datasets found: {', '.join(found)}); "
                          f"problems: {' | '.join(problems[:10]) or 'none recorded'}{more}")


def build_catalog(
    data_root: str | os.PathLike,
    datasets: list[str] | None = None,
    *,
    probe_images: bool = True,
    decode_images: bool = False,
) -> tuple[pd.DataFrame, CatalogReport]:
    """Load every dataset found under ``data_root`` (or only ``datasets``) into one catalog.

    Returns ``(catalog, report)``; the catalog follows :mod:`skinmap.data.schema` with unique
    ``uid``. A requested dataset that is not found is listed in ``report.datasets_missing`` and
    recorded as a ``missing_file`` issue; a dataset whose files are broken is recorded (dataset,
    file, row) and skipped.

    Raises
    ------
    FileNotFoundError
        ``data_root`` is not a folder.
    DataInputError
        ``datasets`` is empty or names no dataset found under the root; a generic dataset is named
        like an official one found there; or no row at all could be loaded (the message lists the
        problems of every dataset).
    """
    index = FileIndex(data_root)
    issues = IssueLog()
    entries, generic_found = _discover(index, issues)
    found = list(entries)
    _check_request(datasets, found, index.root)
    wanted = list(found) if datasets is None else list(datasets)
    missing = [d for d in wanted if d not in found]
    for d in missing:
        close = difflib.get_close_matches(d, found, n=1)
        issues.add("missing_file", d, str(index.root),
                   message=f"{d}: no files of this dataset found under {index.root}"
                           + (f" (did you mean {close[0]!r}?)" if close else ""))
    frames = []
    entries = {name: entries[name] for name in wanted if name in found}
    for name in entries:
        frame = _load_one(name, generic_found.get(name), index, issues, probe_images, decode_images)
        if len(frame):
            frames.append(frame)
    if not frames:
        raise _nothing_loaded(index.root, found, issues)
    catalog = conform(pd.concat(frames, ignore_index=True))
    reg_ns = dict(zip(registry()["dataset"], registry()["id_namespace"]))
    namespaces = {d: (e.get("id_namespace") or reg_ns.get(d) or d) for d, e in entries.items()}
    rows_loaded = len(catalog)
    catalog, dedup = dedup_by_identifier(catalog, namespaces)
    validate_catalog(catalog)
    issue_frame = issues.to_frame()
    unmapped = issue_frame[issue_frame["kind"] == "unknown_label"]
    unmapped = (unmapped.groupby(["dataset", "value"]).size().rename("rows").reset_index()
                .rename(columns={"value": "diagnosis"}) if len(unmapped) else
                pd.DataFrame(columns=["dataset", "diagnosis", "rows"]))
    report = CatalogReport(
        data_root=str(index.root), datasets_found=found, datasets_missing=missing, rows_loaded=rows_loaded,
        rows_after_dedup=len(catalog), dedup=dedup, issues=issue_frame, unmapped_labels=unmapped,
    )
    report.summary = summarize(catalog, dedup, entries)
    return catalog[list(CATALOG_COLUMNS)], report


def write_outputs(out_dir: str | os.PathLike, catalog: pd.DataFrame, report: CatalogReport,
                  atlas_root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write the data chapter's exports atomically into ``out_dir``.

    ``catalog.parquet``, ``summary.csv`` (per dataset), ``issues.csv`` (one row per bad input),
    ``report.json``; for a synthetic atlas also ``ground_truth.json`` and ``synthetic_latent.npy``
    (rows aligned with the catalog rows that have pixels).
    """
    from skinmap.io import write_csv, write_json, write_npy, write_parquet
    from skinmap.runs import chapter_export_path

    out = Path(out_dir)
    paths = {
        "catalog": write_parquet(catalog, chapter_export_path(out, "data.catalog")),
        "summary": write_csv(report.summary, chapter_export_path(out, "data.summary")),
        "issues": write_csv(report.issues, chapter_export_path(out, "data.issues")),
        "report": write_json(report.to_dict(), chapter_export_path(out, "data.report")),
    }
    if atlas_root is not None:
        from skinmap.data.synthetic import latent_for_catalog, read_ground_truth

        paths["ground_truth"] = write_json(read_ground_truth(atlas_root), chapter_export_path(out, "data.ground_truth"))
        paths["latent"] = write_npy(latent_for_catalog(catalog, atlas_root),
                                    chapter_export_path(out, "data.synthetic_latent"))
    else:  # ground truth only exists for the synthetic atlas: never leave a stale one behind
        for key in ("data.ground_truth", "data.synthetic_latent"):
            chapter_export_path(out, key).unlink(missing_ok=True)
    return paths


def _main() -> None:  # pragma: no cover - convenience for `python -m skinmap.data.catalog ROOT OUT`
    import sys

    from skinmap.io import write_csv, write_json, write_parquet
    from skinmap.runs import chapter_export_path

    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    catalog, report = build_catalog(root)
    write_parquet(catalog, chapter_export_path(out, "data.catalog"))
    write_csv(report.summary, chapter_export_path(out, "data.summary"))
    write_json(report.to_dict(), chapter_export_path(out, "data.report"))
    print(f"{len(catalog)} rows ({report.duplicates_removed} duplicates removed) -> {out}")


if __name__ == "__main__":  # pragma: no cover
    _main()
