"""Seeded mutation fuzzing of the CVAT API payload converter (what live pulls and webhooks use).

Recorded payloads (a job's LabeledData, ``/data/meta``, labels and JobRead) and the API form of
a video job with tracks are mutated as JSON (type-confused, huge, NaN and infinite values,
deleted keys, duplicated entries). The converter must return an annotation set (bad objects in
``data_errors``) or raise a labelgate error naming the problem; nothing else may escape.
"""

from __future__ import annotations

import json
import os
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from cvat_double import load_state
from mutations import mutate_json

from labelgate.errors import LabelgateError
from labelgate.model import AnnotationSet
from labelgate_cvat.payloads import cvat_job_to_annotations
from labelgate_cvat.xml_export import xml_to_payloads

# More cases for a longer hunt: LABELGATE_FUZZ_ROUNDS=20 (as in tests/labelgate/test_input_fuzz)
CASES = 150 * int(os.environ.get("LABELGATE_FUZZ_ROUNDS", "1"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "cvat"
VIDEO = """<annotations><meta><job><id>3</id><start_frame>0</start_frame>
<stop_frame>9</stop_frame><labels>
<label><name>car</name><type>rectangle</type><attributes><attribute><name>color</name>
<input_type>select</input_type><values>red
blue</values><default_value>red</default_value></attribute></attributes></label>
<label><name>pose</name><type>skeleton</type><svg>&lt;line data-node-from="1" data-node-to="2"/&gt;
&lt;circle data-node-id="1" data-label-name="a"/&gt;&lt;circle data-node-id="2" data-label-name="b"/&gt;
</svg></label>
<label><name>a</name><type>points</type><parent>pose</parent></label>
<label><name>b</name><type>points</type><parent>pose</parent></label>
</labels></job><original_size><width>64</width><height>48</height></original_size></meta>
<track id="1" label="car"><box frame="0" outside="0" keyframe="1" xtl="1" ytl="1" xbr="9" ybr="9"
 rotation="30"><attribute name="color">blue</attribute></box>
<box frame="6" outside="1" keyframe="1" xtl="1" ytl="1" xbr="9" ybr="9"/></track>
<track id="2" label="car"><polygon frame="1" outside="0" keyframe="1" points="1,1;9,1;9,9"/>
<polygon frame="4" outside="0" keyframe="1" points="2,1;19,1;9,9;1,9"/></track>
<track id="3" label="pose"><skeleton frame="2" keyframe="1" outside="0">
<points label="a" points="1,1" outside="0" occluded="0"/><points label="b" points="5,5" outside="0"
 occluded="1"/></skeleton>
<skeleton frame="5" keyframe="1" outside="0"><points label="a" points="3,1" outside="0"/>
<points label="b" points="7,5" outside="0"/></skeleton></track>
</annotations>"""


def _documents() -> list[dict[str, Any]]:
    state = load_state()
    recorded = state["annotations"]["101"]
    image_job = {
        "payload": {key: rows[:12] for key, rows in recorded.items()},
        "meta": state["meta"]["101"],
        "labels": [lab for lab in state["labels"] if lab.get("project_id") == 1],
        "job": state["jobs"]["101"],
    }
    labels, meta, payload = xml_to_payloads(ET.fromstring(VIDEO))
    video_job = {"payload": payload, "meta": meta, "labels": labels, "job": {"id": 3}}
    return [image_job, video_job]


@pytest.mark.filterwarnings("ignore::labelgate.errors.DataWarning")
@pytest.mark.parametrize(("doc", "seed"), [(0, 11), (1, 12)], ids=["image-job", "video-tracks"])
def test_mutated_payloads_convert_or_raise_a_labelgate_error(doc, seed):
    base = _documents()[doc]
    clean = cvat_job_to_annotations(
        base["payload"], base["meta"], base["labels"], annotator="a", job=base["job"]
    )
    assert len(clean.annotations) > 0 and clean.data_errors == ()
    rng = random.Random(seed)
    outcomes = {"converted": 0, "refused": 0}
    for case in range(CASES):
        log: list[str] = []
        mutated = json.loads(mutate_json(json.dumps(base), rng, log))
        if not isinstance(mutated, dict):
            continue
        try:
            out = cvat_job_to_annotations(
                mutated.get("payload"),
                mutated.get("meta"),
                mutated.get("labels") or [],
                annotator="a",
                job=mutated.get("job") if isinstance(mutated.get("job"), dict) else None,
            )
        except LabelgateError as exc:
            assert str(exc), log
            outcomes["refused"] += 1
        except BaseException as exc:
            raise AssertionError(f"seed {seed} case {case}: {log}: raised {exc!r}") from exc
        else:
            assert isinstance(out, AnnotationSet)
            outcomes["converted"] += 1
    # Both outcomes happen, so the mutations reach past the first checks.
    assert outcomes["converted"] > CASES // 3 and outcomes["refused"] > 0, outcomes


def test_video_meta_one_frame_entry_covers_the_range():
    """A video's ``/data/meta`` has one ``frames`` entry for all frames (names per frame)."""
    from labelgate_cvat.payloads import items_from_meta

    meta = {
        "start_frame": 2,
        "stop_frame": 5,
        "frames": [{"name": "v.mp4", "width": 64, "height": 48}],
    }
    items = items_from_meta(meta)
    assert items.id.tolist() == [2, 3, 4, 5]
    assert list(items.name) == ["frame_000002", "frame_000003", "frame_000004", "frame_000005"]
    assert items.width.tolist() == [64] * 4 and items.height.tolist() == [48] * 4


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"start_frame": 0, "stop_frame": 10**12, "frames": [{}]}, "not a range of 1 to"),
        ({"start_frame": "x", "stop_frame": 1, "frames": [{}]}, "start_frame='x'"),
        ({"start_frame": 0, "stop_frame": 0, "frames": [{"width": "inf"}]}, "frames.width='inf'"),
        ({"start_frame": 0, "stop_frame": 1, "frames": 5}, "frames: expected a list of objects"),
        ([1], "expected an object, got list"),
    ],
    ids=["huge-range", "start-text", "width-inf", "frames-int", "not-an-object"],
)
def test_bad_meta_is_a_format_error_naming_the_field(meta, words):
    from labelgate.errors import FormatError
    from labelgate_cvat.payloads import items_from_meta

    with pytest.raises(FormatError, match="CVAT data meta") as info:
        items_from_meta(meta)
    assert words in str(info.value)
