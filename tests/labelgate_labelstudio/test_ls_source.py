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


class _Client:
    """Records how the source asks for the tasks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def snapshot(self, project, **kwargs):
        self.calls.append(("snapshot", kwargs))
        return "snapshot"

    def pull(self, project, snapshot=None, **kwargs):
        self.calls.append(("pull", {"snapshot": snapshot, **kwargs}))
        return "annotation set"


@pytest.mark.parametrize("route", ["auto", "pages"])
@pytest.mark.parametrize("scores", [False, True])
def test_pull_reads_the_tasks_by_the_route_asked(route, scores):
    client = _Client()
    source = ProjectSource(client, push_options=PushOptions(scores=scores, workers=3), route=route)
    batch = source.pull(Target("labelstudio", "project", "5"))
    assert batch.aset == "annotation set" and batch.handle == ("snapshot" if scores else None)
    fetch = {"workers": 3, "on_progress": None, "route": route}
    if scores:  # the raw snapshot is kept for the push, then converted
        assert client.calls == [
            ("snapshot", fetch),
            ("pull", {"snapshot": "snapshot", "gt_policy": "per-author"}),
        ]
    else:
        assert client.calls == [("pull", {"snapshot": None, "gt_policy": "per-author", **fetch})]
