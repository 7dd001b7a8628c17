"""CVAT webhook events parsed by the CVAT adapter (moved out of the webhook app)."""

import pytest

from labelgate.errors import FormatError
from labelgate.run_sources import Target
from labelgate_cvat.events import event_target, parse_event


def test_an_annotation_save_rescores_its_job():
    body = {
        "event": "update:job",
        "webhook_id": 2,
        "job": {"id": 5, "task_id": 3, "updated_date": "2026-01-01T00:00:00Z"},
        "before_update": {"updated_date": "2025-12-31T00:00:00Z"},
    }
    event = parse_event(body)
    assert event.target == Target("cvat", "job", "5") and event.key == "job:5"
    assert event.delivery == "2:update:job:job:5:2026-01-01T00:00:00Z"
    assert event_target(body) == Target("cvat", "job", "5")


def test_own_stage_changes_and_pings_rescore_nothing():
    stage = {"event": "update:job", "job": {"id": 5}, "before_update": {"stage": "annotation"}}
    assert parse_event(stage).status == "ignored" and event_target(stage) is None
    assert parse_event({"event": "ping"}).status == "pong"
    created = {"event": "create:job", "job": {"id": 9, "task_id": 3}}
    assert event_target(created) == Target("cvat", "task", "3")


def test_a_bad_id_is_a_format_error_naming_the_field():
    with pytest.raises(FormatError, match=r"job\.id must be an integer"):
        parse_event({"event": "update:job", "job": {"id": 0}})
