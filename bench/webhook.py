"""Benchmark the webhook receiver: acknowledged events per second and acknowledgement latency.

Starts a real ``labelgate serve`` process (waitress, durable SQLite queue, no worker) on
127.0.0.1 in a temporary LABELGATE_HOME, posts signed CVAT annotation-save events for many jobs
from a pool of keep-alive HTTP clients, and prints the throughput and the p50/p99 latency from
request sent to answer received. Every event must be acknowledged (2xx) and the queue must hold
exactly one coalesced job per target afterwards. The target: p99 under 50 ms while saturated
(100 ms with Redis, whose server shares the two cores with the receiver and the clients).

With ``--backend redis`` the receiver enqueues into Redis + RQ instead (a temporary
``redis-server`` on a free loopback port, in memory only).

Usage: python bench/webhook.py [--events 5000] [--jobs 100] [--concurrency 16] [--threads 8]
                               [--backend durable|redis]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.request import urlopen

from labelgate.queue import open_queue
from labelgate_webhook.loadgen import cvat_save_event, fire, percentile

SECRET = "bench-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--threads", type=int, default=8, help="waitress threads")
    ap.add_argument("--backend", choices=("durable", "redis"), default="durable")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="labelgate-bench-webhook-"))
    port = _free_port()
    env = {
        **os.environ,
        "LABELGATE_HOME": str(home),
        "LABELGATE_CVAT_WEBHOOK_SECRET": SECRET,
        "LABELGATE_DEBOUNCE_SECONDS": "3600",  # nothing becomes due while we measure
    }
    env.pop("LABELGATE_QUEUE_URL", None)
    redis_server = None
    queue_url = str(home / "queue.db")
    if args.backend == "redis":
        binary = shutil.which("redis-server")
        if binary is None:
            print("FAILED: --backend redis needs redis-server (Debian package redis-server)")
            return 1
        redis_port = _free_port()
        redis_server = subprocess.Popen(
            [
                binary,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(home),
            ],
            stdout=subprocess.DEVNULL,
        )
        queue_url = env["LABELGATE_QUEUE_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        time.sleep(0.5)
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "labelgate.cli", "serve", "--port", str(port)),
            *("--no-worker", "--threads", str(args.threads)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            print("FAILED: labelgate serve did not start")
            return 1
        url = f"http://127.0.0.1:{port}/webhooks/cvat"
        warm = [cvat_save_event(10**6, 1, s) for s in range(50)]
        fire(url, warm, SECRET, concurrency=args.concurrency)
        bodies = [cvat_save_event(1 + i % args.jobs, 1, i) for i in range(args.events)]
        t0 = time.perf_counter()
        acks = fire(url, bodies, SECRET, concurrency=args.concurrency)
        elapsed = time.perf_counter() - t0
        queue = open_queue(queue_url)
        jobs = queue.jobs()
        queue.close()
    finally:
        server.terminate()
        server.wait(10)
        if redis_server is not None:
            redis_server.terminate()
            redis_server.wait(10)
    latencies = [a.seconds * 1000 for a in acks]
    statuses = Counter(a.status for a in acks)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(
        f"webhook receiver (waitress, {args.threads} threads, {args.backend} queue), "
        f"{args.events:,} signed CVAT events for {args.jobs} jobs, {args.concurrency} clients:"
    )
    print(f"  {args.events / elapsed:,.0f} acknowledged events/s ({elapsed:.2f} s)")
    print(
        f"  acknowledgement latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms"
    )
    print(f"  statuses {dict(statuses)}; queue: {len(jobs) - 1} jobs + 1 warm-up job")
    target = 50 if args.backend == "durable" else 100
    ok = statuses == {202: args.events} and len(jobs) == args.jobs + 1 and p99 < target
    print(
        "OK"
        if ok
        else f"FAILED: an event was not acknowledged, not coalesced, or p99 >= {target} ms"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
