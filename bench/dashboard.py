"""Benchmark the dashboard's project page.

Target (issue 20): the project page of a stored project with 100,000 conflicts renders in under
1 s server time. The store holds 10 runs of a bundle with 100,000 conflict rows on 25,000
frames (3 annotators, per-item agreement for every frame); pages are timed with Flask's test
client. Scores, trends and alerts come from the digest stored with each report, so no request
parses a report body except the first one that lists a report's items: it parses the newest
report once (25 MB of JSON) and builds its item table, which is then cached per report id. That
one-time cost is printed without a target; every other page (first, deep, filtered, home) must
answer under 1 s.

Usage: python bench/dashboard.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.store import open_store
from labelgate_webhook import create_app

N_CONFLICTS = 100_000
N_FRAMES = 25_000
RUNS = 10
TARGET = 1.0
TYPES = ("missing_annotation", "extra_annotation", "mismatching_label", "low_overlap")
LABELS = ["car", "person", "road_sign", "bike", "truck"]


def bundle(seed: int) -> dict[str, Any]:
    """A `labelgate report` bundle of the stored shape, with 100k conflict rows."""
    rng = np.random.default_rng(seed)
    names = ["annotator1", "annotator2", "annotator3"]
    frames = rng.integers(0, N_FRAMES, N_CONFLICTS).tolist()
    who = rng.integers(0, 3, N_CONFLICTS).tolist()
    kind = rng.integers(0, len(TYPES), N_CONFLICTS).tolist()
    conflicts = [
        {
            "annotator": names[a],
            "type": TYPES[k],
            "severity": "error",
            "frame": f,
            "item_name": f"frame_{f:06d}.jpg",
            "labels": "car vs person",
            "similarity": 0.3,
            "link": f"https://cvat.example/tasks/1/jobs/{2 + f // 1000}?frame={f}",
        }
        for f, a, k in zip(frames, who, kind, strict=True)
    ]
    size = len(LABELS) + 1
    comparisons = {}
    for n in names:
        rows = rng.integers(0, 50, (size, size))
        rows[np.diag_indices(size)] += 5000
        rows[-1, -1] = 0
        valid = int(np.trace(rows[:-1, :-1]))
        comparisons[n] = {
            "summary": {
                "valid_count": valid,
                "total_count": int(rows.sum()),
                "ds_count": int(rows[:-1].sum()),
                "gt_count": int(rows[:, :-1].sum()),
            },
            "confusion_matrix": {"labels": [*LABELS, "unmatched"], "rows": rows.tolist()},
        }
    agreement = rng.random(N_FRAMES).tolist()
    return {
        "source": {"name": "big", "items": N_FRAMES, "meta": {"system": "cvat"}},
        "comparisons": comparisons,
        "conflicts": conflicts,
        "conflicts_truncated": 0,
        "agreement": {
            "annotators": names,
            "matrix": {"f1": [[1.0, 0.8, 0.7], [0.8, 1.0, 0.75], [0.7, 0.75, 1.0]]},
            "summary": {"mean_pairwise_f1": 0.75},
            "per_item": [
                {"item": i, "name": f"frame_{i:06d}.jpg", "agreement": a}
                for i, a in enumerate(agreement)
            ],
        },
        "scorecards": [{"annotator": n, "accuracy": 0.9, "items": N_FRAMES} for n in names],
        "alerts": [{"type": "drift", "severity": "warning", "message": "m", "action": "a"}],
        "gate": {"passed": True},
    }


def _time(client: Any, path: str) -> tuple[float, int]:
    t = time.perf_counter()
    res = client.get(path)
    el = time.perf_counter() - t
    if res.status_code != 200:
        raise SystemExit(f"{path}: HTTP {res.status_code}: {res.text[:300]}")
    return el, len(res.data)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'store.db'}"
        t = time.perf_counter()
        start = datetime(2026, 1, 1, tzinfo=timezone.utc)
        with open_store(url) as store:
            for run in range(RUNS):
                store.save_report(
                    "bundle",
                    "file",
                    "big",
                    bundle(run),
                    project="cvat:1",
                    created_at=start + timedelta(days=run),
                )
        print(f"seeded {RUNS} runs x {N_CONFLICTS:,} conflicts in {time.perf_counter() - t:.1f} s")
        app = create_app({"STORE_URL": url, "QUEUE_PATH": str(Path(tmp) / "q.db")})
        client = app.test_client()
        ok = True
        checks = [
            ("dashboard home, first request (stored digests only)", "/"),
            ("project page, first request (newest report parsed)", "/sources/cvat/1"),
            ("project page", "/sources/cvat/1"),
            ("project page, page 400 of 500", "/sources/cvat/1?page=400"),
            ("project page, filtered", "/sources/cvat/1?annotator=annotator2&reason=low_overlap"),
        ]
        for n, (label, path) in enumerate(checks):
            el, size = _time(client, path)
            if n == 1:
                print(f"{label}: {el:.3f} s (once per report id, no target), {size:,} bytes")
                continue
            ok &= el < TARGET
            print(f"{label}: {el:.3f} s (target < {TARGET:g} s), {size:,} bytes")
        app.extensions["labelgate_store"].close()
        app.extensions["labelgate_queue"].close()
    print("OK" if ok else "FAILED: a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
