"""The quality engine: ground-truth comparison at CVAT 2.42 parity, vectorised."""

from labelgate.engine.aggregate import project_report, task_report
from labelgate.engine.compare import compare, pair_items
from labelgate.engine.job_filter import job_matches
from labelgate.engine.matching import Matches, match_annotations
from labelgate.engine.report import Report
from labelgate.engine.req_aggregate import project_requirement_report, task_requirement_report
from labelgate.engine.req_report import RequirementReport
from labelgate.engine.req_score import compare_requirements
from labelgate.engine.requirements import (
    Requirement,
    RequirementTree,
    legacy_preset,
    tree_for,
)
from labelgate.engine.settings import QualitySettings, resolve_settings

__all__ = [
    "Matches",
    "QualitySettings",
    "Report",
    "Requirement",
    "RequirementReport",
    "RequirementTree",
    "compare",
    "compare_requirements",
    "job_matches",
    "legacy_preset",
    "match_annotations",
    "pair_items",
    "project_report",
    "project_requirement_report",
    "resolve_settings",
    "task_report",
    "task_requirement_report",
    "tree_for",
]
