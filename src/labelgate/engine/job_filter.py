"""CVAT's ``job_filter``: a JSON-logic expression selecting which jobs a task report compares.

Supports the operators CVAT's filter UI emits: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``,
``and``, ``or``, ``!``, ``in`` and ``var``, over the terms CVAT allows: ``id``, ``type``,
``state``, ``stage``, ``assignee`` (username), ``task_id`` and ``task_name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labelgate.engine.jsonlogic import COMPARE, parse_rule, safe_compare
from labelgate.errors import SettingsError

TERMS = ("id", "type", "state", "stage", "assignee", "task_id", "task_name")


def _eval(node: Any, job: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_eval(x, job) for x in node]
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise SettingsError(f"job_filter: each rule needs exactly one operator, got {list(node)}")
    op, args = next(iter(node.items()))
    if op == "var":
        name = args[0] if isinstance(args, list) else args
        if name not in TERMS:
            raise SettingsError(f"job_filter: unknown term {name!r}; allowed: {', '.join(TERMS)}")
        return job.get(name)
    values = args if isinstance(args, list) else [args]
    if op == "and":
        return all(_eval(v, job) for v in values)
    if op == "or":
        return any(_eval(v, job) for v in values)
    if op in ("!", "not"):
        return not _eval(values[0], job)
    if op == "in":
        needle, hay = _eval(values[0], job), _eval(values[1], job)
        return needle in (hay or [])
    if op in COMPARE:
        if op in ("<", "<=") and len(values) == 3:  # JSON-logic "between"
            a, b, c = (_eval(v, job) for v in values)
            return safe_compare(op, a, b) and safe_compare(op, b, c)
        a, b = (_eval(v, job) for v in values[:2])
        # a missing value (None) compared with a number: no match
        return safe_compare(op, a, b)
    raise SettingsError(f"job_filter: unsupported operator {op!r}")


def job_matches(job_filter: str, job: Mapping[str, Any]) -> bool:
    """Whether a job passes ``job_filter`` (an empty filter passes everything).

    Args:
        job_filter: JSON-logic text, as stored in CVAT's quality settings.
        job: the job's fields (``id``, ``type``, ``stage``, ``state``, ``assignee`` username,
            ``task_id``, ``task_name``).

    Raises:
        SettingsError: malformed JSON, unknown operator or unknown term.
    """
    if not job_filter:
        return True
    return bool(_eval(parse_rule(job_filter, "job_filter", require_object=False), job))
