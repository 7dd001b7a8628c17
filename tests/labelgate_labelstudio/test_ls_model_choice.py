"""The model of the rubber-stamping check: chosen explicitly or by the project's model version,
never alphabetically, never labelgate's own predictions."""

import pytest

from labelgate.decisions.scorecards import choose_model, scorecards
from labelgate.errors import ValidationError
from labelgate_labelstudio.json_export import is_labelgate_prediction, ls_tasks_to_annotation_set

CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="bbox" toName="image"><Label value="car"/></RectangleLabels></View>"""


def _box(x, rid):
    return {
        "id": rid,
        "from_name": "bbox",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 100,
        "original_height": 100,
        "value": {"x": x, "y": 10, "width": 10, "height": 10, "rectanglelabels": ["car"]},
    }


def _tasks():
    """Two annotators who keep model "zeta"'s boxes; model "alpha" boxes elsewhere."""
    tasks = []
    for i in range(1, 4):
        mine = [_box(10, f"a{i}"), _box(50, f"b{i}")]
        tasks.append(
            {
                "id": i,
                "data": {"image": f"{i}.jpg"},
                "annotations": [
                    {
                        "id": 10 * i + k,
                        "completed_by": {"id": k, "email": f"u{k}@x"},
                        "result": mine,
                    }
                    for k in (1, 2)
                ],
                "predictions": [
                    {"id": 100 + i, "model_version": "zeta", "score": 0.9, "result": mine},
                    {
                        "id": 200 + i,
                        "model_version": "alpha",
                        "score": 0.9,
                        "result": [_box(80, f"c{i}")],
                    },
                    {
                        "id": 300 + i,
                        "model_version": "labelgate-consensus",
                        "score": 1.0,
                        "result": mine,
                    },
                ],
            }
        )
    return tasks


def test_labelgate_predictions_are_never_an_annotator_or_a_model():
    aset = ls_tasks_to_annotation_set(_tasks(), CONFIG)
    names = set(aset.split_by_annotator())
    assert names == {"u1@x", "u2@x", "prediction:zeta", "prediction:alpha"}
    assert is_labelgate_prediction("labelgate-consensus") and is_labelgate_prediction(
        "labelgate-quality"
    )
    assert not is_labelgate_prediction("zeta") and not is_labelgate_prediction(None)


def test_model_comes_from_the_project_not_the_alphabet():
    aset = ls_tasks_to_annotation_set(_tasks(), CONFIG, meta={"model_version": "zeta"})
    cards = scorecards(aset)
    # Both annotators drew exactly zeta's two boxes on every task: matched F1 1.0; alpha's one
    # box lies elsewhere (IoU 0), which an alphabetical pick would have reported as 0.0.
    assert [(c["model"], c["prediction_agreement"]) for c in cards] == [("zeta", 1.0)] * 2
    explicit = scorecards(aset, model="alpha")
    assert [(c["model"], c["prediction_agreement"]) for c in explicit] == [("alpha", 0.0)] * 2


def test_without_a_model_version_two_models_are_not_guessed():
    aset = ls_tasks_to_annotation_set(_tasks(), CONFIG)
    assert choose_model(aset, aset.split_by_annotator()) is None
    assert all("prediction_agreement" not in c for c in scorecards(aset))
    assert choose_model(aset, ["u1@x", "prediction:zeta"]) == "prediction:zeta"  # the only one
    with pytest.raises(ValidationError, match="have: alpha, zeta"):
        choose_model(aset, aset.split_by_annotator(), "gamma")
