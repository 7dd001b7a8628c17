"""Options and helpers shared by the commands that read a whole batch."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from labelgate.adapters import GT_POLICIES
from labelgate.json_stream import dump_json_file, iter_json, write_chunks
from labelgate.model import AnnotationSet

if TYPE_CHECKING:
    from labelgate.run_sources import FileSource

F = TypeVar("F", bound=Callable[..., Any])
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def batch_input(func: F) -> F:
    """Add SOURCE (a multi-annotator file) or --gt/--ds files, and --config."""
    for deco in reversed(
        [
            click.argument("source", required=False, type=FILE),
            click.option(
                "--gt",
                type=FILE,
                help="Ground-truth file (with --ds), instead of a multi-annotator SOURCE.",
            ),
            click.option(
                "--ds",
                multiple=True,
                type=FILE,
                help="An annotator's file; repeat for each annotator.",
            ),
            click.option(
                "--config",
                type=FILE,
                help="Label Studio label config XML (default: config.xml beside the export).",
            ),
            gt_policy_option,
        ]
    ):
        func = deco(func)
    return func


def _remember_gt_policy(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # Kept on the context, not passed to every batch command: only the readers need it.
    if value is not None:
        ctx.meta["labelgate.gt_policy"] = value


#: ``--gt-policy``, kept on the click context for :func:`read_options`.
gt_policy_option = click.option(
    "--gt-policy",
    type=click.Choice(GT_POLICIES),
    default=None,
    expose_value=False,
    callback=_remember_gt_policy,
    help="Label Studio tasks with several ground-truth annotations: none is GT "
    "(per-author, the default), the earliest is (first), or all are (merge).",
)


def read_options(config: Path | None) -> dict[str, Any]:
    """Reader options of the current command: ``--config`` and ``--gt-policy``."""
    opts: dict[str, Any] = {"config": config} if config else {}
    ctx = click.get_current_context(silent=True)
    if ctx is not None and "labelgate.gt_policy" in ctx.meta:
        opts["gt_policy"] = ctx.meta["labelgate.gt_policy"]
    return opts


def file_source(
    source: Path | None, gt: Path | None, ds: tuple[Path, ...], config: Path | None
) -> FileSource:
    """The batch command's files as a :class:`~labelgate.run_sources.FileSource`.

    Raises:
        ValidationError: neither SOURCE nor --gt with --ds given, or both.
    """
    from labelgate.run_sources import FileSource

    return FileSource(source, gt, tuple(ds), reader_options=read_options(config))


def load_multi(
    source: Path | None, gt: Path | None, ds: tuple[Path, ...], config: Path | None
) -> AnnotationSet:
    """One multi-annotator set from a multi-annotator file, or from --gt plus --ds files
    (the batch :func:`file_source` pulls).

    Raises:
        ValidationError: neither form given, or files with different label sets.
    """
    return file_source(source, gt, ds, config).pull().aset


def write_json(path: Path | None, data: Any) -> None:
    """Write ``data`` as one-line JSON (creating folders), in chunks; nothing when ``path`` is
    None. ``-`` writes to stdout.

    Unindented, so the stdlib's C encoder does the work, and streamed
    (:func:`labelgate.json_stream.iter_json`), so a lazy report inside ``data`` writes its
    conflicts from their columns and the document is never one string.
    """
    if path is None:
        return
    if str(path) == "-":
        write_chunks(sys.stdout, iter_json(data, default=str))
        sys.stdout.write("\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    dump_json_file(path, data, default=str)


def semantics_option(func: F) -> F:
    """``--semantics cvat-2.42|cvat-requirements``: which CVAT scoring a command reproduces.

    Unset: the settings file decides (``[[requirement]]`` tables select requirement mode, flat
    ``[quality]`` fields or no file CVAT 2.42's), or, for a live CVAT task, the server version.
    """
    return click.option(
        "--semantics",
        type=click.Choice(["cvat-2.42", "cvat-requirements"]),
        default=None,
        help="CVAT scoring to reproduce: 2.42's flat settings or 2.74+'s quality requirements "
        "(default: from the settings file, or the CVAT server's version).",
    )(func)
