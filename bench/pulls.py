"""Benchmark live pulls: a CVAT job through the test double, a Label Studio project from a server.

CVAT: the CVAT API test double (tests/fixtures/cvat_double.py) serves one job of 200,000 seeded
shapes (4 in 5 rectangles with a select attribute, 1 in 5 polygons of 3-8 vertices) on
127.0.0.1; labelgate pulls it through cvat-sdk (annotations and frame list as raw JSON, parsed
with orjson) and converts it into the model. The job's JSON is rendered once up front, so the
time is the client's: transfer, parse and conversion. Target: >= 200k shapes/s. Also printed:
the pull's CPU seconds and the split of its wall time (fetch, parse, convert). Beside it: the
floor (a bare urllib GET + ``orjson.loads`` of the same body, collector paused as in the
pull) and the SDK's own model-building call (the path labelgate used before), timed on a
20,000-shape job.

Label Studio: a real server (labelgate_labelstudio.devserver, as the test suite starts it)
with 3,000 tasks x 3 annotators (bench/ls_pushback.py's seed). labelgate's pull (the project's
JSON export streamed and parsed with orjson, the users read beside it, converted into the model;
the task pages only when the export is refused) is timed next to the SDK's own export of the
same project (``projects.exports.download_sync``, bytes only). Target: <= 2x the export.
The SDK's task pager (labelgate's path before the concurrent pages) is timed too.

Usage: python bench/pulls.py [--shapes 200000] [--tasks 3000] [--workers 4] [--skip-ls]
                             [--skip-cvat]
                             [--url URL --api-key KEY]   (an already running LS server)
Exit 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import urllib.request
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "fixtures"), str(ROOT / "bench")]

from cvat_double import CvatDouble, load_state  # noqa: E402
from flask import Response, request  # noqa: E402

from labelgate.io.gc_pause import gc_paused  # noqa: E402
from labelgate.io.inputs import loads_json  # noqa: E402
from labelgate_cvat.client import connect as cvat_connect  # noqa: E402
from labelgate_cvat.payloads import schema_from_labels  # noqa: E402
from labelgate_cvat.pipeline import pull_job  # noqa: E402

CVAT_TARGET = 200_000  # shapes/s
LS_TARGET = 2.0  # x the SDK's export


def cvat_state(n_shapes: int, frames: int = 2000, seed: int = 7) -> dict[str, Any]:
    """The recorded project's labels with one job of ``n_shapes`` seeded shapes."""
    rng = random.Random(seed)
    base = load_state()
    shapes = []
    for i in range(n_shapes):
        x, y = rng.uniform(0, 1800), rng.uniform(0, 1000)
        common = {
            "id": i + 1,
            "frame": rng.randrange(frames),
            "group": 0,
            "source": "manual",
            "occluded": False,
            "outside": False,
            "z_order": 0,
            "rotation": 0.0,
        }
        if i % 5:
            w, h = rng.uniform(5, 100), rng.uniform(5, 100)
            box = [round(v, 2) for v in (x, y, x + w, y + h)]
            color = {"spec_id": 2, "value": rng.choice(["red", "blue", "white"])}
            shapes.append(
                {**common, "type": "rectangle", "label_id": 1, "points": box, "attributes": [color]}
            )
        else:
            pts = [
                round(v + rng.uniform(0, 80), 2) for _ in range(rng.randint(3, 8)) for v in (x, y)
            ]
            shapes.append(
                {**common, "type": "polygon", "label_id": 3, "points": pts, "attributes": []}
            )
    job = {"id": 1, "task_id": 10, "project_id": 1, "type": "annotation", "stage": "annotation"}
    job |= {"state": "new", "start_frame": 0, "stop_frame": frames - 1, "frame_count": frames}
    size = {"width": 1920, "height": 1080}
    return {
        "projects": base["projects"],
        "tasks": {"10": base["tasks"]["10"]},
        "labels": [lab for lab in base["labels"] if lab.get("project_id") == 1],
        "jobs": {"1": job},
        "meta": {
            "1": {
                "start_frame": 0,
                "stop_frame": frames - 1,
                "frames": [{"name": f"f{i:05d}.jpg", **size} for i in range(frames)],
            }
        },
        "annotations": {"1": {"version": 0, "shapes": shapes, "tags": [], "tracks": []}},
    }


def _serve_prerendered(double: CvatDouble) -> bytes:
    """Answer the job's annotations from bytes rendered once (as the double would render them:
    Flask's compact, key-sorted JSON), so the timing is the client's, not the double's."""
    body = json.dumps(
        {"tags": [], "tracks": [], **double.state["annotations"]["1"]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()

    @double.app.before_request
    def prerendered() -> Response | None:
        if request.method == "GET" and request.path == "/api/jobs/1/annotations/":
            return Response(body, mimetype="application/json")
        return None

    return body


def bench_cvat(n_shapes: int) -> bool:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("cvat_sdk").setLevel(logging.ERROR)  # the double says it is CVAT 2.42
    double = CvatDouble(cvat_state(n_shapes))
    body = _serve_prerendered(double)
    with double.running(), cvat_connect(double.url, token=double.token, timeout=300) as source:
        schema = schema_from_labels(source.labels(task_id=10))
        job = source.job(1)
        floor = _best(lambda: _bare_get(double, "/api/jobs/1/annotations/"), 2)
        pulled, seconds, cpu = None, float("inf"), float("inf")
        for _ in range(2):
            t0, c0 = time.perf_counter(), time.process_time()
            pulled = pull_job(source, job, schema)
            seconds = min(seconds, time.perf_counter() - t0)
            cpu = min(cpu, time.process_time() - c0)
        split = _split(source, job, schema)
    assert pulled is not None and len(pulled.annotations) == n_shapes, "every shape converted"
    rate = n_shapes / seconds
    ok = rate >= CVAT_TARGET
    print(
        f"CVAT pull, one job of {n_shapes:,} shapes ({len(body) / 1e6:.0f} MB of JSON) over HTTP:"
    )
    print(
        f"  labelgate pull_job {seconds:.2f} s = {rate / 1e3:,.0f}k shapes/s "
        f"(target >= {CVAT_TARGET / 1e3:.0f}k/s) {'OK' if ok else 'MISSED'}"
    )
    # CPU seconds of this process (the double serves from a thread of it): on a shared machine
    # the wall time also counts other processes' turns.
    print(f"  CPU {cpu:.2f} s = {n_shapes / cpu / 1e3:,.0f}k shapes/s per CPU second")
    print("  split (wall, best of 2): " + ", ".join(f"{k} {v:.2f} s" for k, v in split.items()))
    print(
        f"  floor: bare urllib GET + orjson.loads of the same body {floor:.2f} s "
        f"= {n_shapes / floor / 1e3:,.0f}k shapes/s"
    )
    sdk = _sdk_models_rate(min(n_shapes, 20_000))
    print(f"  before: cvat-sdk model objects (20k-shape job) {sdk / 1e3:,.1f}k shapes/s")
    return ok


def _split(source: Any, job: dict[str, Any], schema: Any) -> dict[str, float]:
    """Where a pull's time goes: the annotations' bytes over HTTP, parsing them, converting."""
    from labelgate_cvat.pipeline import JobPayload, convert_job

    endpoint = source.api.jobs_api.retrieve_annotations_endpoint
    meta = source.meta(job["id"])
    out = {"fetch": float("inf"), "parse": float("inf"), "convert": float("inf")}
    for _ in range(2):
        t0 = time.perf_counter()
        _none, response = endpoint.call_with_http_info(id=job["id"], _parse_response=False)
        body = response.data
        t1 = time.perf_counter()
        with gc_paused():  # one pause over parse and conversion, as in pull_job
            data = loads_json(body)
            t2 = time.perf_counter()
            convert_job(source, job, schema, JobPayload(data, meta, None))
            del data
        t3 = time.perf_counter()
        for key, spent in zip(out, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            out[key] = min(out[key], spent)
    return out


def _bare_get(double: CvatDouble, path: str) -> Any:
    req = urllib.request.Request(
        double.url + path, headers={"Authorization": f"Bearer {double.token}"}
    )
    with urllib.request.urlopen(req) as answer, gc_paused():
        return loads_json(answer.read())


def _sdk_models_rate(n_shapes: int) -> float:
    double = CvatDouble(cvat_state(n_shapes, seed=8))
    _serve_prerendered(double)
    with double.running(), cvat_connect(double.url, token=double.token, timeout=300) as source:
        t0 = time.perf_counter()
        source.api.jobs_api.retrieve_annotations(1)
        return n_shapes / (time.perf_counter() - t0)


def _best(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_ls(n_tasks: int, workers: int, url: str | None, api_key: str | None) -> bool:
    from label_studio_sdk import LabelStudio
    from ls_pushback import seed

    from labelgate_labelstudio.client import _dump
    from labelgate_labelstudio.client import connect as ls_connect
    from labelgate_labelstudio.devserver import LabelStudioServer, local_server, server_python

    started = (
        nullcontext(LabelStudioServer(url, api_key or "", ""))
        if url
        else local_server(server_python(ROOT))
    )
    with started as server:
        project = seed(server.url, server.api_key, n_tasks)
        sdk = LabelStudio(base_url=server.url, api_key=server.api_key, timeout=600)

        def export() -> int:
            chunks = sdk.projects.exports.download_sync(
                project, export_type="JSON", download_all_tasks=True
            )
            return len(b"".join(chunks))

        def pager() -> int:
            return len([_dump(t) for t in sdk.tasks.list(project=project, fields="all")])

        with ls_connect(server.url, server.api_key, timeout=600) as source:
            export()  # warm the server (first requests compile templates, fill caches)
            peer = min(_timed(export) for _ in range(2))
            mine, pulled = float("inf"), None
            for _ in range(2):
                t0 = time.perf_counter()
                pulled = source.pull(project, workers=workers)
                mine = min(mine, time.perf_counter() - t0)
            before = _timed(pager)
    assert pulled is not None and len(pulled.items) == n_tasks, "every task pulled"
    ratio = mine / peer
    ok = ratio <= LS_TARGET
    print(f"Label Studio pull, {n_tasks:,} tasks x 3 annotators ({workers} workers):")
    print(
        f"  labelgate pull {mine:.2f} s = {ratio:.2f}x the SDK's export {peer:.2f} s "
        f"(target <= {LS_TARGET:g}x) {'OK' if ok else 'MISSED'}"
    )
    print(f"  before: the SDK's task pager (model objects, one page at a time) {before:.2f} s")
    return ok


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", type=int, default=200_000)
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--skip-ls", action="store_true")
    ap.add_argument("--skip-cvat", action="store_true")
    ap.add_argument("--url", default=None)
    ap.add_argument("--api-key", default=None)
    args = ap.parse_args()
    ok = True if args.skip_cvat else bench_cvat(args.shapes)
    if not args.skip_ls:
        ok = bench_ls(args.tasks, args.workers, args.url, args.api_key) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
