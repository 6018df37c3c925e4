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
    python -m skinmap vectors extract --profile full   # under torchrun/srun: embed across GPUs and nodes

Every command has ``--help`` with its options and examples. This module holds the argument
parsing of every command and the one project-root finder (:func:`find_project_root`).
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

__all__ = ["main", "build_parser", "find_project_root"]

_DESCRIPTION = "SkinMap: build and render the audit book, serve the retrieval atlas, assess a new cohort."
_EXAMPLES = """\
examples:
  python -m skinmap book                        # run every chapter (demo profile) and render _book/
  python -m skinmap book --profile mini         # the same on the real datasets
  python -m skinmap run novelty -p k=20         # rerun one chapter with a new parameter
  python -m skinmap run similarity --params my_similarity.yml --profile mini
  python -m skinmap render --renderer nbconvert
  python -m skinmap params novelty              # a chapter's parameters, allowed values and ranges
  python -m skinmap atlas                       # the retrieval web app on http://127.0.0.1:8765
  python -m skinmap assess path/to/cohort/      # what would this cohort add?
  python -m skinmap vectors extract --profile full  # under torchrun/srun: embed across GPUs and nodes

Run `python -m skinmap <command> --help` for a command's options and examples."""

_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# --------------------------------------------------------------------------- shared helpers


def find_project_root(start: str | Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the current folder) holding
    ``_quarto.yml`` and ``params/``, or ``None``."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_quarto.yml").is_file() and (candidate / "params").is_dir():
            return candidate
    return None


def _project_root(value: str | None) -> Path:
    if value:
        return Path(value).resolve()
    root = find_project_root()
    if root is None:
        raise SystemExit("error: not inside a SkinMap project (no _quarto.yml found); pass --project")
    return root


def _profile_name(value: str) -> str:
    # A profile names a folder under params/, runs/ and figures/: never a path.
    if not _PROFILE.match(value):
        raise argparse.ArgumentTypeError(
            f"invalid profile {value!r}: use letters, digits, '-' and '_' (e.g. demo, mini, full)")
    return value


class _Deprecated(argparse.Action):
    """An old spelling of an option: still works, with a message naming the new one."""

    def __init__(self, option_strings, dest, *, new: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _context(args):
    from skinmap.book.runner import BookContext

    return BookContext(
        project_root=_project_root(args.project),
        profile=args.profile,
        run_dir=Path(args.run_dir).resolve() if getattr(args, "run_dir", None) else None,
        wait=getattr(args, "wait", False),
    )


def _served_run_dir(args) -> tuple[Path | None, Path | None]:
    """``(project root or None, run directory or None)`` for the front-end commands."""
    root = Path(args.project).resolve() if args.project else find_project_root()
    if args.run_dir:
        return root, Path(args.run_dir).resolve()
    return root, (root / "runs" / args.profile if root is not None else None)


# --------------------------------------------------------------------------- book commands


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
    took = "" if entry["status"] == "cached" else f" in {entry['run_seconds']:.1f} s"
    print(f"{entry['name']}: {entry['status']}{took}; outputs in {ctx.run_dir / entry['name']}, "
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
        allowed = _allowed_values(field.annotation)
        limits = " ".join(part for part in (allowed, limits) if part) or _kind(field.annotation)
        print(f"  {name} = {values[name]!r}  [{limits}] {field.description or ''}".rstrip())
    return 0


def _allowed_values(annotation) -> str:
    """``one of: 'a', 'b'`` for a Literal setting (also inside Optional or a list), else ``""``."""
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of: " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        inner = next((_allowed_values(a) for a in args if _allowed_values(a)), "")
        return f"each {inner}" if inner else ""
    if args:  # Union / Optional / Annotated
        found = [_allowed_values(a) for a in args if _allowed_values(a)]
        return found[0] if found else ""
    return ""


def _kind(annotation) -> str:
    """What a setting without declared limits takes: text, true/false, a list, ..."""
    import typing

    if annotation is str:
        return "any text"
    if annotation is bool:
        return "true or false"
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return "a list"
    return ""


# --------------------------------------------------------------------------- front ends


def _cmd_atlas(args) -> int:
    from skinmap.atlas.search import AtlasIndexConfig
    from skinmap.atlas.server import serve

    _, run_dir = _served_run_dir(args)
    if run_dir is None:
        print("error: not inside a SkinMap project; pass --run-dir", file=sys.stderr)
        return 2
    try:
        index_config = AtlasIndexConfig(ood_percentile=args.ood_percentile, ivf_min_rows=args.ivf_min_rows,
                                        exclude_flagged=not args.show_flagged)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(run_dir, host=args.host, port=args.port, cache_dir=args.cache_dir,
                 max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                 k_default=args.n_neighbors, max_pending=args.max_pending, quiet=args.quiet,
                 index_config=index_config)


def _atlas_params(project_root: Path | None, profile: str) -> dict:
    """The assessment knobs of the atlas chapter's params for this profile, when available."""
    if project_root is None:
        return {}
    try:
        from skinmap.book.params import load_params

        p = load_params(project_root, profile, "atlas")
    except Exception:  # noqa: BLE001 - no params file or schema: the built-in defaults apply
        return {}

    def first(*names):  # the schema's current name first, then the name it had before
        return next((getattr(p, n) for n in names if hasattr(p, n)), None)

    found = {
        "n_neighbors": first("n_neighbors", "k"),
        "n_bootstrap": first("n_bootstrap", "assess_bootstrap_b"),
        "near_duplicate_similarity": first("near_duplicate_similarity"),
        "seed": first("seed"),
    }
    return {k: v for k, v in found.items() if v is not None}


def _cmd_assess(args) -> int:
    from skinmap import runs
    from skinmap.atlas.assess import AssessConfig, assess
    from skinmap.atlas.cohort import folder_name, load_cohort_vectors

    root, run_dir = _served_run_dir(args)
    if run_dir is None:
        print("error: not inside a SkinMap project; pass --run-dir", file=sys.stderr)
        return 2
    knobs = _atlas_params(root, args.profile)
    knobs.update({k: getattr(args, k) for k in ("n_neighbors", "n_bootstrap", "seed", "near_duplicate_similarity")
                  if getattr(args, k) is not None})
    try:
        config = AssessConfig(exclude_datasets=tuple(args.exclude_dataset), thumbnails=not args.no_thumbnails, **knobs)
        vectors = load_cohort_vectors(args.vectors) if args.vectors else None
        report = assess(args.cohort, run_dir, config, vectors=vectors, progress=args.progress)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = (Path(args.out) if args.out else
           runs.folder_path(run_dir, "assess.report", cohort=folder_name(report.cohort_name)))
    report.write(out)
    print(report.to_text(report_path=out / runs.export_name("assess.report_html")), end="")
    print(f"All files in {out}")
    return 0


# --------------------------------------------------------------------------- multi-node vectors


def _read_hash_table(path: Path, paths: list[str]) -> list[str | None]:
    """The content hashes of ``vectors hash --out``; an error if its images are not ``paths``."""
    rows = [line.split("\t", 1) for line in Path(path).read_text().splitlines() if line]
    if [r[1] if len(r) > 1 else "" for r in rows] != paths:
        raise LookupError(f"{path} lists other images than the run's catalog ({len(rows)} rows for {len(paths)} "
                          "images, or another order): recompute it with `python -m skinmap vectors hash`")
    return [None if r[0] == "-" else r[0] for r in rows]


def _cmd_vectors(args) -> int:
    from skinmap import runs
    from skinmap.book.params import load_params
    from skinmap.embed import pipeline as emb
    from skinmap.embed.extract import VectorCache, cache_identity, extract_vectors, hash_files
    from skinmap.embed.shards import CacheMergeError, clean_parts, merge_vectors
    from skinmap.io import write_text

    root = _project_root(args.project)
    run_dir = Path(args.run_dir).resolve() if args.run_dir else root / "runs" / args.profile
    params = load_params(root, args.profile, "embedding")
    paths = [str(p) for p in emb.image_rows(runs.load_catalog(run_dir))["path"]]
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.action == "hash":
        hashes = hash_files(paths, threads=args.threads, progress=progress)
        write_text("".join(f"{h or '-'}\t{p}\n" for h, p in zip(hashes, paths)), args.out)
        print(f"{len(paths):,} images hashed ({sum(h is None for h in hashes):,} without a file) -> {args.out}")
        return 0
    hashes = _read_hash_table(args.hashes, paths) if args.hashes else hash_files(paths, progress=progress)
    embedding_dir = runs.chapter_dir(run_dir, "embedding")
    cache = Path(params.cache_dir) if params.cache_dir else runs.folder_path(run_dir, "embedding.cache")
    encoders = emb.run_encoders(embedding_dir, cache, params.members, threads=params.threads,
                                efficientnet_image_size=params.efficientnet_image_size, members=args.member or None)
    if args.action == "extract":
        trainer_kwargs = {"accelerator": args.accelerator or params.accelerator,
                          "devices": args.devices or params.devices,
                          "num_nodes": args.num_nodes or params.num_nodes,
                          "strategy": args.strategy or params.strategy, "enable_progress_bar": progress}
        for encoder in encoders:
            res = extract_vectors(paths, encoder, cache, batch_size=params.batch_size, num_workers=params.num_workers,
                                  engine="lightning", trainer_kwargs=trainer_kwargs, hashes=hashes, progress=progress,
                                  merge_on="rank0")
            if res.extra["rank"] == 0:
                print(f"{encoder.name}: {res.n_cached:,} cached, {res.n_computed:,} embedded by "
                      f"{res.extra['world_size']} rank(s); merged and verified: {res.counts()}")
        return 0
    failed = 0
    for encoder in encoders:  # merge: after the job, on one machine
        folder = VectorCache(cache, cache_identity(encoder), encoder.name).root
        out = Path(args.out) / f"{encoder.name}.npy" if args.out else None
        try:
            _, status, report = merge_vectors(folder, hashes, paths=paths, dim=encoder.dim, out=out, progress=progress)
        except CacheMergeError as exc:
            print(f"error: {encoder.name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        cleaned = clean_parts(folder, stale_after=args.stale_after, bad_parts=[n for n, _ in report.bad_parts])
        ok = sum(not s.startswith("skipped") for s in status)
        print(f"{encoder.name}: {report.n_images:,} images, {ok:,} with a vector, from {report.n_parts:,} part file(s) "
              f"(ranks per job: {report.world_sizes or '-'}); {len(report.bad_parts)} unreadable part(s) set aside, "
              f"{len(cleaned) - len(report.bad_parts)} half-written part(s) removed" + (f" -> {out}" if out else ""))
    return 2 if failed else 0


# --------------------------------------------------------------------------- parsers


def _subparser(sub, name: str, summary: str, examples: str, func) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=summary, epilog="examples:\n" + examples,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def _common(p: argparse.ArgumentParser, *, run_dir: bool = True) -> None:
    p.add_argument("--profile", default="demo", type=_profile_name,
                   help="params/<profile>/ to use: demo, mini or full (default demo)")
    p.add_argument("--project", default=None, help="project root (default: found from the current folder)")
    if run_dir:
        p.add_argument("--run-dir", default=None, help="run directory (default <project>/runs/<profile>)")
        p.add_argument("--wait", action="store_true",
                       help="when another run holds the run directory, wait for it instead of stopping")


def _atlas_knob(name: str):
    from skinmap.atlas.search import AtlasIndexConfig
    from skinmap.config import knob_default

    return knob_default(AtlasIndexConfig, name)


def _add_atlas(sub) -> None:
    p = _subparser(sub, "atlas", "serve the retrieval atlas web app (upload an image, see similar cases)", """\
  python -m skinmap atlas                              # demo run on http://127.0.0.1:8765
  python -m skinmap atlas --profile mini --port 8800
  python -m skinmap atlas --run-dir /tmp/my-run --port 0   # any free port
""", _cmd_atlas)
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    p.add_argument("--cache-dir", help="the only folder the app writes to (default: the atlas app cache in the run directory)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted upload in MiB (default 10)")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="largest accepted image in pixels")
    p.add_argument("--n-neighbors", type=int, default=12, help="neighbours shown by default (default 12)")
    p.add_argument("--k", dest="n_neighbors", type=int, action=_Deprecated, new="--n-neighbors",
                   help=argparse.SUPPRESS)
    p.add_argument("--max-pending", type=int, default=8,
                   help="uploads that may wait for the embedding model; more get 503 + Retry-After (default 8)")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    p.add_argument("--ood-percentile", type=float, default=_atlas_knob("ood_percentile"),
                   help="warn 'unlike anything in the atlas' below this percentile of the atlas's own "
                   "nearest-neighbour similarities (default %(default)s)")
    p.add_argument("--ivf-min-rows", type=int, default=_atlas_knob("ivf_min_rows"),
                   help="atlases with at least this many images use an IVF index, smaller ones exact search "
                   "(default %(default)s)")
    p.add_argument("--show-flagged", action="store_true",
                   help="show images the quality chapter flags (with a badge) by default instead of hiding them")


def _add_assess(sub) -> None:
    p = _subparser(sub, "assess", "score a proposed cohort against the atlas: novelty, Fréchet distance, "
                   "holes and sparse regions entered, near duplicates", """\
  python -m skinmap assess path/to/cohort/                  # a folder of images
  python -m skinmap assess cohort.csv --profile mini        # a table with a 'path' column
  python -m skinmap assess vectors.npy --n-bootstrap 500    # precomputed fused-space vectors
  python -m skinmap assess cohort/ --exclude-dataset PH2 --out /tmp/report
""", _cmd_assess)
    p.add_argument("cohort", help="a folder of images, a CSV/parquet table with a 'path' column, or vectors .npy")
    _common(p)
    p.add_argument("--vectors", help="precomputed fused-space vectors (.npy), one row per cohort image")
    p.add_argument("--n-neighbors", type=int, help="neighbours per image (default: atlas params, else 10)")
    p.add_argument("--k", dest="n_neighbors", type=int, action=_Deprecated, new="--n-neighbors",
                   help=argparse.SUPPRESS)
    p.add_argument("--n-bootstrap", type=int,
                   help="bootstrap pseudo-cohorts of the novelty null (default: atlas params, else 200)")
    p.add_argument("--bootstrap-b", dest="n_bootstrap", type=int, action=_Deprecated, new="--n-bootstrap",
                   help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help="random seed (default: atlas params, else 0)")
    p.add_argument("--near-duplicate-similarity", type=float, help="cosine similarity of a near duplicate (0.95)")
    p.add_argument("--exclude-dataset", action="append", default=[], metavar="NAME",
                   help="leave an atlas dataset out (repeatable), e.g. to assess it as if it were new")
    p.add_argument("--out", help="where to write the report (default <run-dir>/assess/<cohort name>)")
    p.add_argument("--no-thumbnails", action="store_true",
                   help="leave image thumbnails out of the HTML report (e.g. when the licence forbids copies)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on standard error (default: when it is a terminal)")


def _add_vectors(sub) -> None:
    p = _subparser(sub, "vectors", "embed the catalog's images across GPUs and nodes (Lightning DDP), resumable; "
                   "merge and verify the per-rank vector cache parts", """\
  python -m skinmap vectors hash --profile full --out hashes.tsv       # once, on one node
  torchrun --nnodes 4 --nproc-per-node 8 ... -m skinmap vectors extract --profile full --hashes hashes.tsv \\
      --num-nodes 4 --devices 8                                         # every rank; rerun to resume
  python -m skinmap vectors merge --profile full --hashes hashes.tsv   # after the job: verify, clean
""", _cmd_vectors)
    p.add_argument("action", choices=["hash", "extract", "merge"],
                   help="hash: content hashes of the catalog's images to a file; extract: embed the images this "
                   "rank owns (run on every rank); merge: check every image has exactly one vector")
    _common(p)
    p.add_argument("--hashes", help="the file written by `vectors hash` (default: hash every image on every rank)")
    p.add_argument("--out", help="hash: the file to write; merge: a folder for <member>.npy in catalog image order")
    p.add_argument("--member", action="append", default=[], metavar="NAME",
                   help="only this member (repeatable; default the frozen one and every trained member "
                   "with a checkpoint)")
    p.add_argument("--accelerator", help="Lightning accelerator (default: the embedding params)")
    p.add_argument("--devices", type=int, help="devices per node (default: the embedding params)")
    p.add_argument("--num-nodes", type=int, help="nodes (default: the embedding params)")
    p.add_argument("--strategy", help="Lightning strategy, e.g. ddp (default: the embedding params)")
    p.add_argument("--threads", type=int, default=8, help="hash: reader threads (default 8)")
    p.add_argument("--stale-after", type=float, default=600.0,
                   help="merge: remove half-written part files older than this many seconds (default 600)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on standard error (default: when it is a terminal)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m skinmap", description=_DESCRIPTION, epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = _subparser(sub, "book", "run every chapter in order and render the book", """\
  python -m skinmap book                      # demo profile: synthetic atlas, minutes on a laptop
  python -m skinmap book --profile mini --only data embedding --no-render
""", _cmd_book)
    _common(p)
    p.add_argument("--force", action="store_true", help="re-execute chapters even when cached")
    p.add_argument("--only", nargs="+", metavar="CHAPTER", help="run only these chapters")
    p.add_argument("--renderer", default="auto", choices=["auto", "quarto", "nbconvert"])
    p.add_argument("--no-render", action="store_true", help="execute chapters without rendering")

    p = _subparser(sub, "run", "(re)run one chapter with new parameters (values are parsed as YAML)", """\
  python -m skinmap run novelty -p k=20
  python -m skinmap run novelty --params my.yml --profile mini
  python -m skinmap run 06-novelty --force
""", _cmd_run)
    p.add_argument("chapter", help="chapter key or file, e.g. novelty or 06-novelty")
    _common(p)
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override one parameter")
    p.add_argument("--params", metavar="FILE.yml", help="a YAML file of parameter overrides")
    p.add_argument("--force", action="store_true", help="re-execute even when cached")

    p = _subparser(sub, "render", "render executed chapters into _book/", """\
  python -m skinmap render
  python -m skinmap render --renderer nbconvert
""", _cmd_render)
    _common(p)
    p.add_argument("--renderer", default="auto", choices=["auto", "quarto", "nbconvert"])

    p = _subparser(sub, "params", "show a chapter's parameters, values and allowed ranges", """\
  python -m skinmap params novelty
  python -m skinmap params quality --profile mini
""", _cmd_params)
    p.add_argument("chapter")
    _common(p, run_dir=False)

    _add_atlas(sub)
    _add_assess(sub)
    _add_vectors(sub)
    return parser


# Errors that are the user's input, not a bug: one line and exit code 2. The book's own error
# types are looked up only once their module is loaded, so `atlas` and `assess` never import the
# book runner.
_USER_ERRORS = (("skinmap.book.params", "ParamsError"), ("skinmap.book.errors", "BookError"),
                ("skinmap.book.render", "RenderError"))


def _user_error_types() -> tuple[type[BaseException], ...]:
    loaded = [getattr(sys.modules[module], name) for module, name in _USER_ERRORS if module in sys.modules]
    return (LookupError, FileNotFoundError, *loaded)


def _show_user_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (2 for bad input, with a one-line message)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        with warnings.catch_warnings():
            # A renamed parameter or flag is a message for the user, not a Python source line.
            warnings.showwarning = _show_user_warning
            return int(args.func(args) or 0)
    except Exception as exc:
        if not isinstance(exc, _user_error_types()):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
