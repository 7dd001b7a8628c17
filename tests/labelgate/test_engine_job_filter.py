"""CVAT job_filter (JSON-logic) evaluation."""

import pytest

from labelgate.engine.job_filter import job_matches
from labelgate.engine.settings import DEFAULT_JOB_FILTER
from labelgate.errors import SettingsError

JOB = {
    "id": 7,
    "type": "annotation",
    "stage": "validation",
    "state": "completed",
    "assignee": "ann",
    "task_id": 3,
    "task_name": "street",
}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (DEFAULT_JOB_FILTER, True),
        ('{"==":[{"var":"type"},"consensus_replica"]}', False),
        ('{"and":[{"==":[{"var":"stage"},"validation"]},{">":[{"var":"id"},5]}]}', True),
        (
            '{"or":[{"==":[{"var":"assignee"},"bob"]},{"in":[{"var":"state"},["new","completed"]]}]}',
            True,
        ),
        ('{"!":{"==":[{"var":"task_name"},"street"]}}', False),
        ('{"<=":[1,{"var":"id"},10]}', True),
        ("", True),
    ],
    ids=["default", "type", "and", "or-in", "not", "between", "empty"],
)
def test_rules(rule, expected):
    assert job_matches(rule, JOB) is expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('{"==":[{"var":"owner"},"x"]}', "unknown term 'owner'"),
        ('{"regex":[{"var":"type"},"a.*"]}', "unsupported operator 'regex'"),
        ("{oops", "not valid JSON"),
    ],
)
def test_bad_rules(rule, message):
    with pytest.raises(SettingsError, match=message):
        job_matches(rule, JOB)
