"""Provenance: the facts that pin down how a chapter page was produced.

Every chapter page ends with a provenance block (appended by the runner after execution) and
the same facts go into ``runs/<profile>/manifest.json``.
"""

from __future__ import annotations

import html
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "input_label", "provenance_markdown"]


def git_commit(project_root: str | Path) -> str:
    """``<sha>`` of HEAD, with ``+dirty`` when tracked files differ; ``unknown`` outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_root, capture_output=True, text=True,
            check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_root,
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def input_label(key: str, *, keep_parts: int = 3) -> str:
    """How an input fingerprint's key is shown on a page: an external file or folder by the last
    ``keep_parts`` components of its path (``external:.../dermamnist/split_info.csv``), so a page
    never shows the build machine's directory layout; the manifest keeps the full path."""
    kind, sep, path = key.partition(":")
    if kind != "external" or not sep or not Path(path).is_absolute():
        return key
    parts = Path(path).parts[1:]
    shown = "/".join(parts[-keep_parts:])
    return f"external:{'.../' if len(parts) > keep_parts else ''}{shown}"


def provenance_markdown(entry: dict[str, Any]) -> str:
    """The provenance block shown at the end of a chapter page (HTML inside a markdown cell)."""
    libs = ", ".join(f"{k} {v}" for k, v in entry["library_versions"].items())
    inputs = "; ".join(f"{input_label(k)}: {v[:12]}"
                       for k, v in sorted(entry["input_fingerprints"].items())) or "none"
    rows = [
        ("Project", f"skinmap {entry['project_version']} at commit {entry['git_commit']}"),
        ("Profile", entry["profile"]),
        ("Parameters hash", entry["params_hash"][:16]),
        ("Input fingerprints", inputs),
        ("Run", f"{entry['finished_at']} in {entry['run_seconds']:.1f} s"),
        ("Libraries", libs),
    ]
    body = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(str(v))}</code></td></tr>" for k, v in rows
    )
    return (
        # Raw HTML throughout, so both Quarto and the nbconvert fallback show it the same way
        # and Quarto does not number it as a section.
        '<div class="provenance" id="provenance">\n'
        '<h2 class="provenance-title">Provenance</h2>\n'
        f'<table class="provenance-table">\n{body}\n</table>\n</div>'
    )
