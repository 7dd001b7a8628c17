"""``CvatRunSource``: the CVAT server as a core ``Source``/``PushingSource`` on the test double.

Numbers are task 10's, hand-checked in test_cvat_live.py (job 103: accuracy 14/18).
"""

from __future__ import annotations

import pytest

from labelgate.errors import ValidationError
from labelgate.run import run_quality
from labelgate.run_sources import PushingSource, Target
from labelgate_cvat.client import connect
from labelgate_cvat.source import CvatRunSource


def _client(double):
    return connect(double.url, token=double.token, retries=1, backoff=0.01, timeout=5)


def test_parse_event_names_the_target():
    source = CvatRunSource(client=None)
    assert isinstance(source, PushingSource)
    save = {
        "event": "update:job",
        "job": {"id": 103, "task_id": 10, "updated_date": "2026-11-23T02:00:00Z"},
        "before_update": {"updated_date": "2026-11-23T01:00:00Z"},
    }
    assert source.parse_event(save) == Target("cvat", "job", "103")
    assert source.parse_event({"event": "ping"}) is None
    own = {"event": "update:job", "job": {"id": 103}, "before_update": {"state": "new"}}
    assert source.parse_event(own) is None  # labelgate's own stage change: no loop


def test_pull_run_push_through_the_protocol(cvat_double):
    with _client(cvat_double) as client:
        source = CvatRunSource(
            client,
            semantics="cvat-2.42",
            overrides={"target_metric_threshold": 0.9},
            stage_policy=True,
        )
        batch = source.pull(Target("cvat", "job", "103"))
        run = run_quality(batch, options=source.run_options(batch))
        assert set(run.comparisons) == {"annotator3"}  # --job: that job alone
        report = run.comparisons["annotator3"].report
        assert report.summary["accuracy"] == pytest.approx(14 / 18)
        (entry,) = source.push(run)["pushed"]
    assert entry["stage"]["action"] == "rejected"  # 0.778 < 0.9
    assert cvat_double.state["jobs"]["103"]["state"] == "rejected"


def test_requirement_pull_scored_without_its_tree_is_not_pushed(cvat_double_at):
    with _client(cvat_double_at("2.80.0")) as client:
        source = CvatRunSource(client, issues=True)
        batch = source.pull(Target("cvat", "task", "10"))
        run = run_quality(batch)  # no RunOptions(requirements=...): 2.42 reports only
        with pytest.raises(ValidationError, match="scored without its requirements"):
            source.push(run)
