"""A throwaway local Label Studio server (tests, ``make bench``, demos).

Label Studio lives in a virtual environment of its own (``make test`` creates
``.venv-labelstudio``; ``LABELGATE_LS_SERVER_PYTHON`` names its python), so its pins never
constrain labelgate's; it is only spoken to over HTTP. The admin user and a fixed legacy API
token are created headlessly at first start, in a fresh data folder removed on stop.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

from labelgate.errors import ConnectionFailed

TOKEN = "0123456789abcdef0123456789abcdef01234567"
ADMIN = "admin@example.com"


@dataclass(frozen=True)
class LabelStudioServer:
    url: str
    api_key: str
    admin_email: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_python(root: Path | None = None) -> Path:
    """``LABELGATE_LS_SERVER_PYTHON``, else ``<root>/.venv-labelstudio/bin/python``."""
    default = (root or Path.cwd()) / ".venv-labelstudio" / "bin" / "python"
    return Path(os.environ.get("LABELGATE_LS_SERVER_PYTHON") or default)


@contextmanager
def local_server(python: Path, *, timeout: float = 240.0) -> Iterator[LabelStudioServer]:
    """Start ``label-studio`` next to ``python`` on a free loopback port; stop it on exit.

    Raises:
        ConnectionFailed: not installed, exited, or no ``/health`` answer within ``timeout``.
    """
    exe = python.parent / "label-studio"
    if not exe.exists():
        raise ConnectionFailed(
            f"Label Studio is not installed at {exe}: run `make test` (it creates "
            ".venv-labelstudio) or set LABELGATE_LS_SERVER_PYTHON"
        )
    data = Path(tempfile.mkdtemp(prefix="labelgate-ls-"))
    port = free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_USERNAME": ADMIN,
        "LABEL_STUDIO_PASSWORD": "labelgate-test-pw",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        # labelgate's webhook receiver listens on 127.0.0.1, which Label Studio's SSRF
        # protection refuses as a webhook target by default.
        "SSRF_PROTECTION_ENABLED": "false",
    }
    log_path = data / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(exe), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise ConnectionFailed("Label Studio exited: " + log_path.read_text()[-3000:])
            try:
                with urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ConnectionFailed(
                    f"Label Studio did not answer /health within {timeout:g} s: "
                    + log_path.read_text()[-3000:]
                )
            time.sleep(1)
        yield LabelStudioServer(url, TOKEN, ADMIN)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(data, ignore_errors=True)
