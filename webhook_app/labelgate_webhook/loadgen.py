"""Signed CVAT webhook traffic for load tests: the burst test and ``bench/webhook.py``.

The events are what CVAT sends for annotation saves (``update:job`` whose ``before_update`` holds
only ``updated_date``), signed as CVAT signs them, and posted from a pool of real HTTP clients.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from labelgate_webhook.signatures import cvat_signature


def cvat_save_event(job_id: int, task_id: int, save: int, webhook_id: int = 1) -> bytes:
    """The body CVAT posts when job ``job_id`` is saved for the ``save``-th time."""
    stamp = f"2026-12-01T{save // 3600 % 24:02d}:{save // 60 % 60:02d}:{save % 60:02d}.{save:06d}Z"
    return json.dumps(
        {
            "event": "update:job",
            "webhook_id": webhook_id,
            "job": {"id": job_id, "task_id": task_id, "updated_date": stamp},
            "before_update": {"updated_date": "2026-11-30T00:00:00.000000Z"},
            "sender": {"id": 1, "username": "annotator"},
        },
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True)
class Ack:
    """One answered request: HTTP status (0 = no answer), seconds to the answer, JSON status."""

    status: int
    seconds: float
    outcome: str


def fire(
    url: str,
    bodies: Iterable[bytes],
    secret: str,
    *,
    concurrency: int = 16,
    timeout: float = 30.0,
) -> list[Ack]:
    """POST every body to ``url`` signed with ``secret``, ``concurrency`` at a time.

    Returns:
        One :class:`Ack` per body, in the order given. A connection error is status 0.
    """
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []

    def post(body: bytes) -> Ack:
        headers = {
            "Content-Type": "application/json",
            "X-Signature-256": cvat_signature(body, secret),
        }
        t0 = time.perf_counter()
        for attempt in (1, 2):  # a kept-alive connection the server closed: reconnect once
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, port, timeout=timeout)
                opened.append(conn)
            try:
                conn.request("POST", path, body=body, headers=headers)
                res = conn.getresponse()
                data = res.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                local.conn = None
                if attempt == 2:
                    return Ack(0, time.perf_counter() - t0, "no answer")
        seconds = time.perf_counter() - t0
        try:
            outcome = str(json.loads(data).get("status", ""))
        except (ValueError, AttributeError):
            outcome = ""
        return Ack(res.status, seconds, outcome)

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(post, bodies))
    finally:
        for conn in opened:
            conn.close()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank (an observed value); NaN for no values."""
    if not values:
        return float("nan")
    return float(np.percentile(values, q, method="inverted_cdf"))
