"""The ``labelgate`` command line.

Every command is registered through the ``labelgate.commands`` entry-point group, so the built-in
commands and adapter commands (``cvat``, ``ls``) and third-party plug-ins load the same way.

Exit codes: 0 success; 1 a check failed (release gate said no); 2 usage or input error
(bad file, bad setting); 3 remote system error (auth, not found, connection) or the local
store failed (unreachable database, full or read-only disk). Messages are redacted
(:func:`labelgate.security.redact`): no password or token reaches the terminal.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import TextIO

import click

from labelgate import __version__
from labelgate.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DataWarning,
    LabelgateError,
    NotFound,
)
from labelgate.security import redact

EXIT_OK, EXIT_CHECK_FAILED, EXIT_INPUT, EXIT_REMOTE = 0, 1, 2, 3


_default_showwarning = warnings.showwarning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Data problems read as ``warning: <message>`` (which names file, record and field)."""
    if issubclass(category, DataWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


class LabelgateGroup(click.Group):
    """Loads commands lazily from entry points and maps labelgate errors to exit codes."""

    def _eps(self) -> dict[str, object]:
        return {ep.name: ep for ep in entry_points(group="labelgate.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = sorted(set(super().list_commands(ctx)) | set(self._eps()))
        return [n for n in names if self.get_command(ctx, n) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        ep = self._eps().get(cmd_name)
        if ep is None:
            return None
        module = ep.value.split(":")[0]  # type: ignore[attr-defined]
        try:
            return ep.load()  # type: ignore[attr-defined, no-any-return]
        except ModuleNotFoundError as exc:
            # A plug-in that is declared but not installed is unavailable, not a crash; the
            # test suite checks that every built-in entry point loads.
            if exc.name and module.startswith(exc.name):
                return None
            raise

    def invoke(self, ctx: click.Context) -> object:
        try:
            with warnings.catch_warnings():
                # Only the display changes: filters (and so -W error) still apply.
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except (AuthenticationFailed, NotFound, ConnectionFailed) as exc:
            click.echo(f"error: {redact(exc)}", err=True)
            ctx.exit(EXIT_REMOTE)
        except LabelgateError as exc:
            click.echo(f"error: {redact(exc)}", err=True)
            ctx.exit(EXIT_INPUT)
        return None


@click.group(cls=LabelgateGroup)
@click.version_option(__version__, prog_name="labelgate")
def main() -> None:
    """labelgate: annotation quality for CVAT and Label Studio teams."""
