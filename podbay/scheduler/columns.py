"""The few array operations the scheduler's snapshot uses, as a pure-Python namespace that numpy also
satisfies.

The snapshot's filters and score are written once against `ArrayNamespace` and `Vector`. A small
cluster runs them on `Column` (lists: nothing to import, quick for a few nodes); a cluster past
`snapshot.NUMPY_FROM_NODES` nodes runs the same expressions on numpy arrays, whose ~10 MiB import
only pays off when each decision looks at hundreds of nodes.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from itertools import compress, repeat
from typing import Protocol, Union, cast, overload

Scalar = Union[int, float, bool]


class Vector(Protocol):
    """One column: a numpy 1-D array or a `Column`. Arithmetic and comparisons are elementwise."""

    def __len__(self) -> int: ...

    @overload
    def __getitem__(self, key: int) -> Scalar: ...

    @overload
    def __getitem__(self, key: slice | Vector) -> Vector: ...

    def __setitem__(self, key: int, value: Scalar) -> None: ...

    def __and__(self, other: Vector) -> Vector: ...

    def __or__(self, other: Vector) -> Vector: ...

    def __invert__(self) -> Vector: ...

    def __lt__(self, other: Vector | Scalar) -> Vector: ...

    def __ge__(self, other: Vector | Scalar) -> Vector: ...

    def __add__(self, other: Vector | Scalar) -> Vector: ...

    def __sub__(self, other: Vector | Scalar) -> Vector: ...

    def __truediv__(self, other: Vector | Scalar) -> Vector: ...

    def max(self) -> Scalar: ...

    def tolist(self) -> list[Scalar]: ...


class ArrayNamespace(Protocol):
    """numpy's functions of these names, or this module's."""

    def zeros(self, shape: int, dtype: type) -> Vector: ...

    def asarray(self, items: Sequence[Scalar], dtype: type) -> Vector: ...

    def concatenate(self, parts: Sequence[Vector]) -> Vector: ...

    def flatnonzero(self, a: Vector) -> Vector: ...

    def where(self, condition: Vector, x: Vector | Scalar, y: Vector | Scalar) -> Vector: ...

    def argmax(self, a: Vector) -> int: ...


def _items(other: Vector | Scalar, n: int) -> Iterable[Scalar]:
    return repeat(other, n) if isinstance(other, (int, float)) else other.tolist()


class Column:
    """A 1-D array over a list, with numpy's semantics for the operations `Vector` names."""
    __slots__ = ("items",)

    def __init__(self, items: list[Scalar]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, key: int) -> Scalar: ...

    @overload
    def __getitem__(self, key: slice | Vector) -> Column: ...

    def __getitem__(self, key: int | slice | Vector) -> Scalar | Column:
        if isinstance(key, int):
            return self.items[key]
        if isinstance(key, slice):
            return Column(self.items[key])
        picks = key.tolist()
        if picks and isinstance(picks[0], bool):  # a mask, as numpy reads a bool array
            return Column(list(compress(self.items, picks)))
        return Column(list(map(self.items.__getitem__, cast(list[int], picks))))  # an index column

    def __setitem__(self, key: int, value: Scalar) -> None:
        self.items[key] = value

    def _map(self, other: Vector | Scalar, op: Callable[[Scalar, Scalar], Scalar]) -> Column:
        return Column(list(map(op, self.items, _items(other, len(self.items)))))

    def __and__(self, other: Vector) -> Column:
        return self._map(other, operator.and_)  # bool & bool is a bool

    def __or__(self, other: Vector) -> Column:
        return self._map(other, operator.or_)

    def __invert__(self) -> Column:
        return Column([not a for a in self.items])

    def __lt__(self, other: Vector | Scalar) -> Column:
        return self._map(other, operator.lt)

    def __ge__(self, other: Vector | Scalar) -> Column:
        return self._map(other, operator.ge)

    def __add__(self, other: Vector | Scalar) -> Column:
        return self._map(other, operator.add)

    def __sub__(self, other: Vector | Scalar) -> Column:
        return self._map(other, operator.sub)

    def __truediv__(self, other: Vector | Scalar) -> Column:
        return self._map(other, operator.truediv)

    def max(self) -> Scalar:
        return max(self.items)

    def tolist(self) -> list[Scalar]:
        return list(self.items)


def zeros(shape: int, dtype: type) -> Column:
    return Column([dtype(0)] * shape)


def asarray(items: Sequence[Scalar], dtype: type) -> Column:
    return Column([dtype(x) for x in items])


def concatenate(parts: Sequence[Vector]) -> Column:
    return Column([x for part in parts for x in part.tolist()])


def flatnonzero(a: Vector) -> Column:
    return Column(list(compress(range(len(a)), a.tolist())))


def where(condition: Vector, x: Vector | Scalar, y: Vector | Scalar) -> Column:
    n = len(condition)
    return Column([a if c else b for c, a, b in zip(condition.tolist(), _items(x, n), _items(y, n))])


def argmax(a: Vector) -> int:
    items = a.tolist()
    return items.index(max(items))  # the first of equals, as numpy's
