"""The quality engine: ground-truth comparison at CVAT 2.42 parity, vectorised."""

from labelgate.engine.aggregate import project_report, task_report
from labelgate.engine.compare import compare, pair_items
from labelgate.engine.job_filter import job_matches
from labelgate.engine.matching import Matches, match_annotations
from labelgate.engine.report import Report
from labelgate.engine.settings import QualitySettings, resolve_settings

__all__ = [
    "Matches",
    "QualitySettings",
    "Report",
    "compare",
    "job_matches",
    "match_annotations",
    "pair_items",
    "project_report",
    "resolve_settings",
    "task_report",
]
