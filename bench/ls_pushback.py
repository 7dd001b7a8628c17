"""Benchmark Label Studio push-back: ``--scores --review-view --predictions`` on 3,000 tasks.

Starts a real Label Studio server (labelgate_labelstudio.devserver, as the test suite does),
creates a project of 3,000 image tasks (the bundled example tasks repeated, 3 annotators each,
gold annotations on every third), scores it and pushes scores, the review view and the consensus
back, then pushes again (nothing may change the second time). Prints the push time next to the
target (<= 30 s) with the pull and scoring times beside it, and exits 1 on a miss.

Usage: python bench/ls_pushback.py [--tasks 3000] [--workers 8] [--target 30]
                                   [--url URL --api-key KEY]   (an already running server)
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from labelgate_labelstudio.client import CONSENSUS_MODEL, SCORE_FIELD, connect
from labelgate_labelstudio.devserver import LabelStudioServer, local_server, server_python
from labelgate_labelstudio.pipeline import score_project

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))  # the test suite's Label Studio seeding


def seed(url: str, api_key: str, n_tasks: int) -> int:
    """A project of ``n_tasks`` tasks with the bundled annotations; returns its id."""
    from label_studio_sdk import LabelStudio
    from ls_seed import close, ensure_users, import_bundled

    client = LabelStudio(base_url=url, api_key=api_key)
    users = ensure_users(client, {f"annotator{i}@example.com": f"annotator{i}" for i in (1, 2, 3)})
    project, _request = import_bundled(
        client, f"labelgate bench {n_tasks}", n_tasks, users, predictions=False, lead_time=False
    )
    close(client)
    return project


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--target", type=float, default=30.0, help="seconds for the push")
    ap.add_argument("--url", default=None)
    ap.add_argument("--api-key", default=None)
    args = ap.parse_args()
    started = (
        nullcontext(LabelStudioServer(args.url, args.api_key, ""))
        if args.url
        else local_server(server_python(ROOT))
    )
    with started as server:
        project = seed(server.url, server.api_key, args.tasks)
        with connect(server.url, server.api_key, timeout=300) as source:
            t0 = time.perf_counter()
            first = score_project(
                source,
                project,
                push_scores=True,
                review_view=True,
                predictions=True,
                workers=args.workers,
            )
            total = time.perf_counter() - t0
            second = score_project(
                source, project, push_scores=True, review_view=True, predictions=True
            )
            snap = source.snapshot(project)
    push, again = first["push"], second["push"]
    scored = sum(SCORE_FIELD in t["data"] for t in snap.tasks)
    consensus = sum(
        any(p.get("model_version") == CONSENSUS_MODEL for p in t.get("predictions") or [])
        for t in snap.tasks
    )
    ok = push["seconds"] <= args.target
    print(
        f"Label Studio push-back, {args.tasks} tasks (--scores --review-view --predictions, "
        f"{args.workers} workers):"
    )
    print(
        f"  push {push['seconds']:.1f} s (target <= {args.target:g} s) "
        f"{'OK' if ok else 'MISSED'}: {push['requests']} requests, "
        f"{push['fields_set']} field values, {push['predictions_created']} predictions created"
    )
    print(f"  whole command (pull + score + push + view) {total:.1f} s")
    print(
        f"  second run: {again['tasks_changed']} task(s) changed, {again['requests']} request(s), "
        f"{again['seconds']:.1f} s"
    )
    print(f"  on the server: {scored} tasks with {SCORE_FIELD}, {consensus} with consensus")
    correct = (
        again["requests"] == 0 and scored == args.tasks and consensus == push["predictions_created"]
    )
    if not correct:
        print("FAILED: the second push wrote again or the server misses pushed values")
    return 0 if ok and correct else 1


if __name__ == "__main__":
    sys.exit(main())
