"""Command line: ``python -m skinmap <command>``.

Examples::

    python -m skinmap book                         # run every chapter (demo profile) and render _book/
    python -m skinmap book --profile mini          # the same on the real datasets
    python -m skinmap run novelty -p k=20 -p bootstrap_b=500
    python -m skinmap run similarity --params my_similarity.yml --profile mini
    python -m skinmap render --renderer nbconvert
    python -m skinmap params novelty               # show a chapter's parameters and their ranges
    python -m skinmap atlas                        # the retrieval web app on http://127.0.0.1:8765
    python -m skinmap assess path/to/cohort/       # what would this cohort add?
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _project_root(value: str | None) -> Path:
    if value:
        return Path(value).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_quarto.yml").is_file() and (candidate / "params").is_dir():
            return candidate
    raise SystemExit("error: not inside a SkinMap project (no _quarto.yml found); pass --project")


def _context(args):
    from skinmap.book.runner import BookContext

    return BookContext(
        project_root=_project_root(args.project),
        profile=args.profile,
        run_dir=Path(args.run_dir).resolve() if getattr(args, "run_dir", None) else None,
    )


def _cmd_book(args) -> int:
    from skinmap.book.render import render_book
    from skinmap.book.runner import build_book

    ctx = _context(args)
    print(f"Building the SkinMap book, profile '{ctx.profile}', run directory {ctx.run_dir}")
    build_book(ctx, force=args.force, only=args.only)
    if args.no_render:
        return 0
    site, renderer = render_book(ctx, renderer=args.renderer)
    print(f"Rendered with {renderer}{' (Quarto not found on PATH)' if renderer == 'nbconvert' else ''}: "
          f"open {site / 'index.html'}")
    return 0


def _cmd_run(args) -> int:
    from skinmap.book.params import parse_overrides
    from skinmap.book.runner import run_chapter, write_manifest

    ctx = _context(args)
    entry = run_chapter(
        ctx, args.chapter, override_file=args.params, overrides=parse_overrides(args.param or [], args.chapter),
        force=args.force,
    )
    write_manifest(ctx)
    took = "cached" if entry["status"] == "cached" else f"{entry['run_seconds']:.1f} s"
    print(f"{entry['name']}: {entry['status']} ({took}); outputs in {ctx.run_dir / entry['name']}, "
          f"notebook {ctx.run_dir / entry['executed_notebook']}")
    print("Re-render the book with `python -m skinmap render` to see it in _book/.")
    return 0


def _cmd_render(args) -> int:
    from skinmap.book.render import render_book

    site, renderer = render_book(_context(args), renderer=args.renderer)
    print(f"Rendered with {renderer}: open {site / 'index.html'}")
    return 0


def _cmd_params(args) -> int:
    from skinmap.book.chapters import book_chapters, find_chapter
    from skinmap.book.params import load_params
    from skinmap.book.schemas import load_schema_module

    root = _project_root(args.project)
    chapter = find_chapter(book_chapters(root), args.chapter)
    schema = load_schema_module(chapter.key)
    values = load_params(root, args.profile, chapter.key).model_dump(mode="json")
    print(f"chapter '{chapter.key}', profile '{args.profile}' (params/{args.profile}/{chapter.key}.yml)")
    for name, field in schema.Params.model_fields.items():
        # annotated_types constraints print as Ge(ge=1): keep the "ge=1" part.
        limits = " ".join(repr(m).partition("(")[2].rstrip(")") for m in field.metadata)
        print(f"  {name} = {values[name]!r}  [{limits}] {field.description or ''}".rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m skinmap", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, run_dir=True):
        p.add_argument("--profile", default="demo", help="params/<profile>/ to use: demo, mini or full (default demo)")
        p.add_argument("--project", default=None, help="project root (default: found from the current folder)")
        if run_dir:
            p.add_argument("--run-dir", default=None, help="run directory (default runs/<profile>)")

    p = sub.add_parser("book", help="run every chapter in order and render the book")
    common(p)
    p.add_argument("--force", action="store_true", help="re-execute chapters even when cached")
    p.add_argument("--only", nargs="+", metavar="CHAPTER", help="run only these chapters")
    p.add_argument("--renderer", default="auto", choices=["auto", "quarto", "nbconvert"])
    p.add_argument("--no-render", action="store_true", help="execute chapters without rendering")
    p.set_defaults(func=_cmd_book)

    p = sub.add_parser(
        "run",
        help="(re)run one chapter with new parameters",
        description="Rerun one chapter, e.g. `python -m skinmap run novelty -p k=20` or "
        "`python -m skinmap run novelty --params my.yml`. Values are parsed as YAML.",
    )
    p.add_argument("chapter", help="chapter key or file, e.g. novelty or 06-novelty")
    common(p)
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override one parameter")
    p.add_argument("--params", metavar="FILE.yml", help="a YAML file of parameter overrides")
    p.add_argument("--force", action="store_true", help="re-execute even when cached")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("render", help="render executed chapters into _book/")
    common(p)
    p.add_argument("--renderer", default="auto", choices=["auto", "quarto", "nbconvert"])
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("params", help="show a chapter's parameters, values and allowed ranges")
    p.add_argument("chapter")
    common(p, run_dir=False)
    p.set_defaults(func=_cmd_params)

    for name, text in (
        ("atlas", "serve the retrieval atlas web app (see `atlas --help`)"),
        ("assess", "score a proposed cohort against the atlas (see `assess --help`)"),
    ):
        sub.add_parser(name, help=text, add_help=False)  # listed in --help; main() delegates
    return parser


_DELEGATED = {"atlas": "skinmap.atlas.app", "assess": "skinmap.assess"}


def main(argv: list[str] | None = None) -> int:
    from skinmap.book.params import ParamsError
    from skinmap.book.render import RenderError
    from skinmap.book.runner import ChapterFailed

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _DELEGATED:
        # These commands own their whole argument list (argparse.REMAINDER would swallow
        # nothing when an option comes first), so hand it over untouched.
        import importlib

        return int(importlib.import_module(_DELEGATED[argv[0]]).main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParamsError, ChapterFailed, RenderError, LookupError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
