"""Secrets stay secret: redaction of messages and private files for labelgate's data.

- :func:`redact` is the one helper every message, HTTP error body and log line goes through:
  it masks URL credentials (``https://user:pw@host`` → ``https://user:***@host``) and the values
  of secret environment variables (``LABELGATE_*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``,
  ``*API_KEY*``).
- :func:`private_dir` and :func:`private_file` create labelgate's home, the report store and the
  queue file readable by their owner only (0700 / 0600): they hold annotator names and e-mails.
  SQLite gives its ``-wal``/``-shm``/``-journal`` files the database file's mode, so a 0600
  database keeps its side files private too.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

MASK = "***"
#: ``scheme://user:password@`` or ``scheme://token@`` in a URL; group 1 keeps the user name.
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:/@]*)(?::(?P<pw>[^\s/@]*))?@"
)
#: Environment variables whose values are secrets (matched on the upper-cased name).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|CREDENTIAL")
#: Shorter values are not masked: they would mask ordinary words and numbers in messages.
_MIN_SECRET = 6


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of ``LABELGATE_*`` variables whose names say they hold a secret."""
    env = os.environ if environ is None else environ
    found = {
        value
        for name, value in env.items()
        if name.upper().startswith("LABELGATE_")
        and _SECRET_NAME.search(name.upper())
        and len(value) >= _MIN_SECRET
    }
    # Longest first, so a secret containing another is masked whole.
    return sorted(found, key=len, reverse=True)


def _mask_url(match: re.Match[str]) -> str:
    if match.group("pw") is None:
        # ``scheme://token@host``: a lone user part is often a token (redis://:pw@, git tokens).
        return f"{match.group('scheme')}{MASK}@" if match.group("user") else match.group(0)
    return f"{match.group('scheme')}{match.group('user')}:{MASK}@"


def redact(
    text: object, secrets: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> str:
    """``text`` with URL credentials and secret values replaced by ``***``.

    Args:
        text: a message (anything; it is converted with ``str``).
        secrets: extra secret values to mask (e.g. a configured webhook secret).
        environ: the environment whose secret ``LABELGATE_*`` values are masked (default
            ``os.environ``).
    """
    out = _URL_CREDENTIALS.sub(_mask_url, str(text))
    extra = [s for s in secrets if s and len(s) >= _MIN_SECRET]
    for value in sorted({*extra, *secret_values(environ)}, key=len, reverse=True):
        out = out.replace(value, MASK)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's final message (attach it to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            # The traceback text is rendered later by the formatter: render it now, redacted.
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = redact(message), None
        return True


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing folder is left as it is.

    Raises:
        OSError: the folder cannot be created.
    """
    folder = Path(path)
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask; set it exactly.
        folder.chmod(0o700)
    return folder


def private_file(path: str | Path) -> Path:
    """Create an empty ``path`` as 0600 if it does not exist (an existing file keeps its mode).

    SQLite then opens the file as it is and gives its side files the same mode.

    Raises:
        OSError: the file cannot be created.
    """
    file = Path(path)
    if not file.exists():
        if not file.parent.exists():
            private_dir(file.parent)
        try:
            fd = os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:  # another process created it first
            return file
        os.close(fd)
        os.chmod(file, 0o600)  # the umask may have cleared bits we wanted; keep exactly 0600
    return file
