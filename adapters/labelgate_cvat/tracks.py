"""CVAT track expansion: keyframes → one shape per frame, with CVAT's interpolation rules.

The rules (CVAT 2.42 ``TrackManager.get_interpolated_shapes``):

- rectangle, ellipse, cuboid and skeleton keyframes interpolate linearly, rotation along the
  shortest arc;
- points interpolate linearly only when both keyframes hold exactly one point, otherwise the
  earlier keyframe is copied;
- polygons and polylines use CVAT's "polyshape" interpolation: vertices are paired by their
  relative position along the outline, interpolated pairwise, and runs of interpolated vertices
  closer than half the mean edge length are thinned out;
- nothing is produced between a keyframe that is ``outside`` and the next one; after the last
  keyframe the shape is propagated to the end of the job unless it is ``outside``;
- keyframe attributes carry forward into later keyframes that do not set them.

Shapes are CVAT API dicts (``frame``, ``type``, ``points``, ``rotation``, ``outside``,
``occluded``, ``z_order``, ``attributes``). The functions are pure and take no SDK objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_LINEAR_TYPES = {"rectangle", "ellipse", "cuboid", "skeleton"}
_POLY_TYPES = {"polygon", "polyline"}


def expand_track(track: Mapping[str, Any], stop_frame: int) -> list[dict[str, Any]]:
    """All per-frame shapes of one track, ``outside`` shapes included (callers drop them).

    Args:
        track: a CVAT ``LabeledTrack`` dict (its ``shapes`` are the keyframes).
        stop_frame: the last frame of the job (inclusive).

    Returns:
        Shape dicts sorted by frame, each with ``keyframe`` set, for frames
        ``track["frame"] .. stop_frame``.
    """
    keyframes = sorted((dict(s) for s in track.get("shapes", ())), key=lambda s: int(s["frame"]))
    end = stop_frame + 1
    start = int(track.get("frame", keyframes[0]["frame"] if keyframes else 0))
    out: list[dict[str, Any]] = []
    prev: dict[str, Any] | None = None
    for key in keyframes:
        key["attributes"] = _carry_attributes(prev, key)
        key["keyframe"] = True
        if prev is not None and not prev.get("outside", False):
            out.extend(interpolate(prev, key, until=end))
        if int(key["frame"]) >= end:
            prev = None
            break
        out.append(key)
        prev = key
    if prev is not None and not prev.get("outside", False):
        out.extend(_copy(prev, f) for f in range(int(prev["frame"]) + 1, end))
    return [s for s in out if start <= int(s["frame"]) < end]


def _carry_attributes(prev: Mapping[str, Any] | None, key: Mapping[str, Any]) -> list[Any]:
    own = [dict(a) for a in key.get("attributes", ())]
    if prev is None:
        return own
    seen = {a["spec_id"] for a in own}
    return own + [dict(a) for a in prev.get("attributes", ()) if a["spec_id"] not in seen]


def _copy(shape: Mapping[str, Any], frame: int, points: Any = None, **extra: Any) -> dict[str, Any]:
    out = dict(shape)
    out["frame"] = frame
    out["keyframe"] = False
    out["attributes"] = [dict(a) for a in shape.get("attributes", ())]
    out["points"] = list(shape.get("points", ())) if points is None else [float(v) for v in points]
    out.update(extra)
    return out


def shortest_arc(a: float, b: float) -> float:
    """Signed rotation from ``a`` to ``b`` degrees along the shorter way round, in (-180, 180]."""
    d = (b - a) % 360.0
    return d - 360.0 if d > 180.0 else d


def interpolate(
    left: Mapping[str, Any], right: Mapping[str, Any], until: int | None = None
) -> list[dict[str, Any]]:
    """Shapes for the frames strictly between two keyframes of one track (and before ``until``).

    ``until`` (the job's end) keeps a far-away keyframe from producing frames no job has.
    """
    f0, f1 = int(left["frame"]), int(right["frame"])
    kind = left.get("type")
    out = []
    for frame in range(f0 + 1, f1 if until is None else min(f1, until)):
        t = (frame - f0) / (f1 - f0)
        if kind != right.get("type"):
            out.append(_copy(left, frame))
        elif kind in _LINEAR_TYPES:
            a = np.asarray(left.get("points", ()), float)
            b = np.asarray(right.get("points", ()), float)
            pts = a + (b - a) * t if a.shape == b.shape else a
            r0 = float(left.get("rotation", 0.0) or 0.0)
            r1 = float(right.get("rotation", 0.0) or 0.0)
            out.append(_copy(left, frame, pts, rotation=(r0 + shortest_arc(r0, r1) * t) % 360.0))
        elif kind == "points":
            a = np.asarray(left.get("points", ()), float)
            b = np.asarray(right.get("points", ()), float)
            single = len(a) == 2 and len(b) == 2
            out.append(_copy(left, frame, a + (b - a) * t if single else a))
        elif kind in _POLY_TYPES:
            pts = polyshape(left["points"], right["points"], t, closed=kind == "polygon")
            out.append(_copy(left, frame, pts))
        else:
            out.append(_copy(left, frame))
    return out


def _relative_positions(p: np.ndarray) -> np.ndarray:
    """Cumulative distance of each vertex along the outline, divided by the outline length."""
    steps = np.hypot(*np.diff(p, axis=0).T) if len(p) > 1 else np.zeros(0)
    acc = np.concatenate([[0.0], np.cumsum(steps)])
    total = acc[-1]
    return acc / total if total > 0 else np.zeros(len(p))


def _pair_vertices(lo: np.ndarray, ro: np.ndarray) -> list[list[int]]:
    """For each left vertex, the right vertices it pairs with (CVAT's two-pass nearest match)."""
    pairs = [[int(np.argmin(np.abs(ro - v)))] for v in lo]
    used = {j for p in pairs for j in p}
    for j in range(len(ro)):
        if j not in used:
            pairs[int(np.argmin(np.abs(lo - ro[j])))].append(j)
    return [sorted(p) for p in pairs]


def _outline_length(p: np.ndarray) -> float:
    return float(np.hypot(*np.diff(p, axis=0).T).sum()) if len(p) > 1 else 0.0


def polyshape(
    left: Sequence[float], right: Sequence[float], t: float, *, closed: bool
) -> list[float]:
    """CVAT's polygon/polyline interpolation at fraction ``t`` between two keyframes.

    Args:
        left, right: flat ``[x0, y0, x1, y1, ...]`` vertex lists of the two keyframes.
        t: position between them, in (0, 1).
        closed: polygon (the first vertex is appended while computing, then removed).

    Returns:
        The flat vertex list of the interpolated shape.
    """
    a: np.ndarray = np.asarray(left, float).reshape(-1, 2)
    b: np.ndarray = np.asarray(right, float).reshape(-1, 2)
    if closed:
        a, b = np.vstack([a, a[:1]]), np.vstack([b, b[:1]])
    pairs = _pair_vertices(_relative_positions(a), _relative_positions(b))
    first: list[int] = []  # index of each left vertex's first interpolated point
    rows: list[np.ndarray] = []
    for i, js in enumerate(pairs):
        first.append(len(rows))
        rows.extend(a[i] + (b[j] - a[i]) * t for j in js)
    pts = np.asarray(rows)
    reduced = _thin(pts, pairs, first, a, b)
    flat = np.asarray(reduced).reshape(-1).tolist()
    return flat[:-2] if closed else flat


def _thin(
    pts: np.ndarray, pairs: list[list[int]], first: list[int], a: np.ndarray, b: np.ndarray
) -> list[np.ndarray]:
    """Drop interpolated points that crowd each other (CVAT's ``reduce_interpolation``)."""
    out: list[np.ndarray] = []

    def run(base: float, n: int, lo: int, hi: int) -> None:
        # Keep a point only once it is at least half a mean edge away from the last kept one.
        threshold = base / (2 * n)
        kept = [pts[lo]]
        last = lo
        for k in range(lo + 1, hi):
            if np.hypot(*(pts[k] - pts[last])) >= threshold:
                kept.append(pts[k])
                last = k
        kept.append(pts[hi])
        if len(kept) == 2 and np.hypot(*(pts[hi] - pts[lo])) < threshold:
            kept = [(kept[0] + kept[1]) / 2]
        out.extend(kept)

    def left_run(i0: int, i1: int) -> None:
        lo, hi = first[i0], first[i1]
        if lo == hi:
            out.append(pts[lo])
            return
        run(_outline_length(a[i0 : i1 + 1]), i1 - i0 + 1, lo, hi)

    def right_run(i: int) -> None:
        j0, j1 = pairs[i][0], pairs[i][-1]
        lo, hi = first[i], first[i] + len(pairs[i]) - 1
        run(_outline_length(b[j0 : j1 + 1]), j1 - j0 + 1, lo, hi)

    opened: int | None = None
    for i, js in enumerate(pairs):
        if len(js) == 1:
            if opened is None:
                opened = i
            elif js[0] != pairs[opened][0]:
                left_run(opened, i - 1)
                opened = i
        else:
            if opened is not None:
                left_run(opened, i - 1)
                opened = None
            right_run(i)
    if opened is not None:
        left_run(opened, len(pairs) - 1)
    return out
