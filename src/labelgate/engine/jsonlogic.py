"""The JSON-logic core shared by CVAT's job filter and its requirement (annotation) filter.

Both filters are JSON-logic text stored in CVAT's quality settings. This module parses the
text, holds the comparison operators, and evaluates an expression over a *table*: one boolean
per row, column at a time, so an annotation filter over a whole job is a handful of numpy
operations rather than a Python call per annotation.

Iterated variables (CVAT's ``shape.attribute.name`` / ``.value``) follow CVAT's binding rule:
inside an ``and``, every term over the same iterator refers to the same candidate (the same
attribute), so ``{"and": [name == "color", value == "red"]}`` needs one attribute that is both.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelgate.arrays import AnyArray, BoolArray
from labelgate.errors import SettingsError

COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def safe_compare(op: str, a: Any, b: Any) -> bool:
    """``a <op> b``, False where the values cannot be compared (``None < 3``)."""
    try:
        return bool(COMPARE[op](a, b))
    except TypeError:
        return False


def parse_rule(text: str, what: str, *, require_object: bool = True) -> Any:
    """JSON-decode a filter; None for an empty one.

    Args:
        text: the JSON-logic text.
        what: names the filter in messages (``job_filter``, ``requirement 'cars': filter``).
        require_object: refuse anything but a one-operator object.

    Raises:
        SettingsError: not JSON, or not a JSON object.
    """
    if not text or not text.strip():
        return None
    try:
        rule = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{what} is not valid JSON ({exc})") from None
    if require_object and (not isinstance(rule, dict) or len(rule) != 1):
        raise SettingsError(f"{what}: expected an object with exactly one operator, got {text!r}")
    return rule


@dataclass(frozen=True)
class Iterator:
    """Candidates of an iterated variable group, e.g. a row's attributes.

    ``columns[k]`` maps the relative names (``name``, ``value``) to (N,) object arrays for the
    k-th candidate; ``present[k]`` says which rows have that candidate at all.
    """

    columns: Sequence[Mapping[str, AnyArray]]
    present: Sequence[BoolArray]


@dataclass(frozen=True)
class Table:
    """What a filter reads: plain columns and iterated groups, all of length ``n``.

    A plain column is an (N,) array; None (object) or NaN (float) means the value is absent,
    and an absent value fails every comparison, ``!=`` included, as CVAT's filter does.
    """

    n: int
    columns: Mapping[str, AnyArray]
    iterators: Mapping[str, Iterator] = field(default_factory=dict)

    def iterator_of(self, name: str) -> tuple[str, str] | None:
        """(group, relative name) when ``name`` is an iterated variable, else None."""
        for group in sorted(self.iterators, key=len, reverse=True):
            if name.startswith(group + "."):
                return group, name[len(group) + 1 :]
        return None


_State = frozenset[tuple[str, int]]  # which candidate each bound iterator group is bound to


def evaluate(rule: Any, table: Table) -> BoolArray:
    """The (N,) boolean mask of the rows ``rule`` selects (all rows when ``rule`` is None).

    Validation (which operators and variables are allowed) is the caller's job; this raises
    only for shapes it cannot evaluate.

    Raises:
        SettingsError: an operator this evaluator does not know.
    """
    if rule is None:
        return np.ones(table.n, bool)
    out = _eval(rule, table, {frozenset(): np.ones(table.n, bool)})
    mask = np.zeros(table.n, bool)
    for m in out.values():
        mask |= m
    return mask


def _eval(node: Any, t: Table, states: dict[_State, BoolArray]) -> dict[_State, BoolArray]:
    op, args = next(iter(node.items()))
    if op == "and":
        for arg in args:
            states = _eval(arg, t, states)
        return states
    if op == "or":
        out: dict[_State, BoolArray] = {}
        for arg in args:
            _union(out, _eval(arg, t, states))
        return out
    if op == "!!":
        return _eval(args[0] if isinstance(args, list) else args, t, states)
    if op == "!":
        arg = args[0] if isinstance(args, list) else args
        out = {}
        for s, m in states.items():  # bindings made inside a negation do not escape it
            hit = np.zeros(t.n, bool)
            for r in _eval(arg, t, {s: m}).values():
                hit |= r
            out[s] = m & ~hit
        return out
    if op == "var":
        return _leaf(_var_name(args), t, states, _present)
    if op == "<=" and isinstance(args, list) and len(args) == 3:
        lo, hi = args[0], args[2]
        return _leaf(_var_name(args[1]["var"]), t, states, lambda c: _between(c, lo, hi))
    if op in COMPARE:
        lit = args[1]
        return _leaf(_var_name(args[0]["var"]), t, states, lambda c: _compare(c, op, lit))
    if op == "in":
        if isinstance(args[0], dict):
            hay = args[1]
            return _leaf(_var_name(args[0]["var"]), t, states, lambda c: _isin(c, hay))
        needle = args[0]
        return _leaf(_var_name(args[1]["var"]), t, states, lambda c: _compare(c, "==", needle))
    raise SettingsError(f"filter: operator {op!r} is not supported")


def _var_name(arg: Any) -> str:
    return str(arg[0] if isinstance(arg, list) else arg)


def _union(into: dict[_State, BoolArray], other: Mapping[_State, BoolArray]) -> None:
    for s, m in other.items():
        into[s] = into[s] | m if s in into else m


def _leaf(
    name: str,
    t: Table,
    states: Mapping[_State, BoolArray],
    pred: Callable[[AnyArray], BoolArray],
) -> dict[_State, BoolArray]:
    it = t.iterator_of(name)
    if it is None:
        value = pred(t.columns[name])
        return {s: m & value for s, m in states.items()}
    group, rel = it
    cands = t.iterators[group]
    out: dict[_State, BoolArray] = {}
    for s, m in states.items():
        bound = dict(s).get(group)
        ks = range(len(cands.columns)) if bound is None else (bound,)
        for k in ks:
            hit = m & cands.present[k] & pred(cands.columns[k][rel])
            key = s if bound is not None else s | {(group, k)}
            _union(out, {key: hit})
    return out


def _absent(col: AnyArray) -> BoolArray:
    if col.dtype.kind == "f":
        return np.isnan(col)
    if col.dtype.kind == "O":
        return np.fromiter((v is None for v in col), bool, len(col))
    return np.zeros(len(col), bool)


def _present(col: AnyArray) -> BoolArray:
    return ~_absent(col)


def _compare(col: AnyArray, op: str, lit: Any) -> BoolArray:
    ok = ~_absent(col)
    if col.dtype.kind in "fiub":
        if isinstance(lit, bool) and col.dtype.kind != "b":
            return np.zeros(len(col), bool)
        if isinstance(lit, int | float):
            with np.errstate(invalid="ignore"):
                return ok & np.asarray(COMPARE[op](col, lit), np.bool_)
        return np.zeros(len(col), bool) if op != "!=" else ok
    # Object columns: numpy applies the operator per element; TypeError means "no match".
    f = np.frompyfunc(lambda v: v is not None and safe_compare(op, v, lit), 1, 1)
    return f(col).astype(bool) if len(col) else np.zeros(0, bool)


def _between(col: AnyArray, lo: Any, hi: Any) -> BoolArray:
    return _compare(col, ">=", lo) & _compare(col, "<=", hi)


def _isin(col: AnyArray, hay: Any) -> BoolArray:
    if not isinstance(hay, list | str):
        return np.zeros(len(col), bool)

    def contains(v: Any) -> bool:
        try:
            return v is not None and v in hay
        except TypeError:
            return False

    f = np.frompyfunc(contains, 1, 1)
    return f(col.astype(object)).astype(bool) if len(col) else np.zeros(0, bool)
