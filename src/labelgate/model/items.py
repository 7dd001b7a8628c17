"""Items: the frames (CVAT) or tasks (Label Studio) that annotations refer to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labelgate.arrays import AnyArray, BoolArray, IntArray
from labelgate.errors import ValidationError


def _col(values: Any, dtype: Any, n: int, name: str, fill: Any) -> AnyArray:
    if values is None:
        return np.full(n, fill, dtype=dtype)
    try:
        arr = np.asarray(values, dtype=dtype)
    except (OverflowError, TypeError, ValueError) as exc:
        raise ValidationError(
            f"Items.{name}: values that are not {np.dtype(dtype)} ({exc})"
        ) from None
    if n < 0:  # the id column sets the length
        return arr.reshape(-1)
    if arr.shape != (n,):
        raise ValidationError(f"Items.{name}: expected {n} values, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Items:
    """Columnar table of items, sorted by ``id``.

    Attributes:
        id: frame number (CVAT) or task id (Label Studio), unique, ascending.
        name: file name / task title, used to pair items across sources.
        width, height: image size in pixels (0 when unknown or not an image).
        deleted: frame deleted in the source system (never compared).
        real_frame: for a CVAT honeypot placeholder, the real validation frame it shows; else -1.
        gold: item belongs to the ground-truth/validation set.
    """

    id: npt.NDArray[np.int64]
    name: npt.NDArray[np.object_]
    width: npt.NDArray[np.int64]
    height: npt.NDArray[np.int64]
    deleted: npt.NDArray[np.bool_]
    real_frame: npt.NDArray[np.int64]
    gold: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        n = len(self.id)
        for name in ("name", "width", "height", "deleted", "real_frame", "gold"):
            if len(getattr(self, name)) != n:
                raise ValidationError(
                    f"Items.{name}: expected {n} values, got {len(getattr(self, name))}"
                )
        if n > 1 and not np.all(np.diff(self.id) > 0):
            raise ValidationError("Items.id must be unique and ascending")
        if np.any(self.width < 0) or np.any(self.height < 0):
            raise ValidationError("Items.width/height must not be negative")

    @classmethod
    def create(
        cls,
        id: Sequence[int] | IntArray,
        name: Sequence[str] | None = None,
        width: Sequence[int] | int | None = None,
        height: Sequence[int] | int | None = None,
        deleted: Sequence[bool] | None = None,
        real_frame: Sequence[int] | None = None,
        gold: Sequence[bool] | None = None,
    ) -> Items:
        """Build from plain lists; items are sorted by id.

        Raises:
            ValidationError: lengths differ, ids repeat, or sizes are negative.
        """
        ids = _col(id, np.int64, -1, "id", 0)
        n = len(ids)
        names = (
            np.array([str(i) for i in ids], dtype=object)
            if name is None
            else _col(list(name), object, n, "name", "")
        )
        w = _col([width] * n if isinstance(width, int) else width, np.int64, n, "width", 0)
        h = _col([height] * n if isinstance(height, int) else height, np.int64, n, "height", 0)
        order = np.argsort(ids, kind="stable")
        return cls(
            id=ids[order],
            name=names[order],
            width=w[order],
            height=h[order],
            deleted=_col(deleted, bool, n, "deleted", False)[order],
            real_frame=_col(real_frame, np.int64, n, "real_frame", -1)[order],
            gold=_col(gold, bool, n, "gold", False)[order],
        )

    @classmethod
    def empty(cls) -> Items:
        return cls.create([])

    def __len__(self) -> int:
        return len(self.id)

    def position(self, item_id: int) -> int:
        """Row of an item id.

        Raises:
            ValidationError: the id is not in the table.
        """
        i = int(np.searchsorted(self.id, item_id))
        if i >= len(self.id) or self.id[i] != item_id:
            raise ValidationError(f"unknown item id {item_id}")
        return i

    def size_of(self, item_ids: IntArray) -> tuple[IntArray, IntArray]:
        """Width and height for each id in ``item_ids`` (0 where unknown)."""
        pos = np.searchsorted(self.id, item_ids)
        pos = np.clip(pos, 0, max(len(self.id) - 1, 0))
        if len(self.id) == 0:
            z = np.zeros(len(item_ids), np.int64)
            return z, z.copy()
        ok = self.id[pos] == item_ids
        return np.where(ok, self.width[pos], 0), np.where(ok, self.height[pos], 0)

    def select(self, mask: BoolArray) -> Items:
        return Items(
            id=self.id[mask],
            name=self.name[mask],
            width=self.width[mask],
            height=self.height[mask],
            deleted=self.deleted[mask],
            real_frame=self.real_frame[mask],
            gold=self.gold[mask],
        )

    def merged(self, other: Items) -> Items:
        """Union by id; for ids in both, this table's row wins."""
        keep = ~np.isin(other.id, self.id)
        o = other.select(keep)
        return Items.create(
            id=np.concatenate([self.id, o.id]),
            name=list(self.name) + list(o.name),
            width=list(self.width) + list(o.width),
            height=list(self.height) + list(o.height),
            deleted=list(self.deleted) + list(o.deleted),
            real_frame=list(self.real_frame) + list(o.real_frame),
            gold=list(self.gold) + list(o.gold),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id.tolist(),
            "name": [str(x) for x in self.name],
            "width": self.width.tolist(),
            "height": self.height.tolist(),
            "deleted": self.deleted.tolist(),
            "real_frame": self.real_frame.tolist(),
            "gold": self.gold.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Items:
        return cls.create(
            id=d["id"],
            name=d.get("name"),
            width=d.get("width"),
            height=d.get("height"),
            deleted=d.get("deleted"),
            real_frame=d.get("real_frame"),
            gold=d.get("gold"),
        )
