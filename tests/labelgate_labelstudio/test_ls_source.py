"""The Label Studio source as a quality-run port: protocol, targets and webhook parsing."""

import pytest

from labelgate.errors import FormatError, ValidationError
from labelgate.run_sources import PushingSource, Target
from labelgate_labelstudio.source import ProjectSource, PushOptions, project_id_of


def test_project_source_is_a_pushing_source():
    source = ProjectSource(client=None)
    assert isinstance(source, PushingSource) and source.system == "labelstudio"
    # Only a push that writes tasks needs the raw tasks kept with the pull.
    assert not PushOptions(review_view=True).needs_snapshot
    assert PushOptions(scores=True).needs_snapshot
    assert PushOptions(predictions=None).needs_snapshot


def test_parse_event_names_the_project_or_nothing():
    source = ProjectSource(client=None)
    event = {"action": "ANNOTATION_UPDATED", "project": {"id": 7}, "annotation": {"id": 3}}
    assert source.parse_event(event) == Target("labelstudio", "project", "7")
    assert source.parse_event({"action": "PROJECT_CREATED", "project": {"id": 7}}) is None
    with pytest.raises(FormatError, match=r"project\.id must be an integer"):
        source.parse_event({"action": "ANNOTATION_CREATED", "project": {"id": "7"}})
    with pytest.raises(FormatError, match=r"annotation\.id"):
        source.parse_event(
            {"action": "ANNOTATION_CREATED", "project": {"id": 7}, "annotation": {"id": True}}
        )


def test_pull_refuses_a_target_of_another_system():
    with pytest.raises(ValidationError, match="labelstudio:project:<id>"):
        ProjectSource(client=None).pull(Target("cvat", "job", "4"))
    with pytest.raises(ValidationError, match="positive integer"):
        project_id_of(Target("labelstudio", "project", "x"))
    assert project_id_of(Target("labelstudio", "project", "12")) == 12
