"""Argument validation shared by every public entry point.

Validation lives here so that the maths in the layers stays free of bookkeeping. Every
message names the owner (class or function), the argument, the expected and the actual value.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_size(owner: str, name: str, value, *, minimum: int = 1) -> int:
    """An integer >= minimum; bool and float are refused (``True`` is not a size)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{owner}: expected {name} to be an int >= {minimum}, got {type(value).__name__} {value!r}"
        )
    if value < minimum:
        raise ValueError(f"{owner}: expected {name} >= {minimum}, got {value}")
    return int(value)


def check_dtype(owner: str, dtype) -> np.dtype:
    """float32 or float64, as a numpy dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{owner}: expected dtype float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: expected dtype float32 or float64, got {dt}")
    return dt


def check_real(owner: str, name: str, value, *, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (a 0-d array counts) between ``low`` and ``high``, ends closed
    unless told open; bool is refused (``True`` is not a number)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: expected {name} to be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):
        interval = f"{'(' if low_open or low == -math.inf else '['}{low}, {high}{')' if high_open or high == math.inf else ']'}"
        raise ValueError(f"{owner}: expected {name} finite and in {interval}, got {value}")
    return value


def check_bool(owner: str, name: str, value) -> bool:
    """A bool (a 0-d bool array counts); 0 and 1 are refused."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: expected {name} to be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_names(owner: str, kind: str, given, valid) -> None:
    """Every name in ``given`` is one of ``valid``; else a ValueError listing the unknown and the valid."""
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"{owner}: unknown {kind} {unknown}; valid names: {', '.join(valid)}")


def lookup(owner: str, kind: str, name, registry):
    """``registry[name]``, or a ValueError listing the valid names: the one rule for every
    string choice (cells, losses, optimizers, tasks, modes, ...); a name that is no str is a TypeError."""
    if not isinstance(name, str):
        raise TypeError(f"{owner}: expected the {kind} name to be a str, got {type(name).__name__}")
    try:
        return registry[name]
    except (KeyError, TypeError):
        valid = ", ".join(str(key) for key in registry)
        raise ValueError(f"{owner}: unknown {kind} {name!r}; valid names: {valid}") from None


def check_array(owner: str, name: str, value, dtype: np.dtype, *, check_finite: bool = False) -> np.ndarray:
    """A floating ndarray of exactly ``dtype``: ints, bools, complex and objects are refused.

    Lists are accepted and converted; nothing is cast silently between float32 and float64.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "f":
        raise TypeError(f"{owner}: expected {name} of a floating dtype ({dtype}), got dtype {arr.dtype}")
    if arr.dtype != dtype:
        raise TypeError(
            f"{owner}: expected {name} of dtype {dtype} (the weights' dtype), got {arr.dtype}; "
            f"convert it explicitly with .astype(np.{dtype})"
        )
    if check_finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}: expected finite values in {name}, got NaN or inf")
    return arr


def shape_str(shape) -> str:
    """A shape written like ``(B, T, 8)``; strings stay as they are."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_shape(owner: str, name: str, arr: np.ndarray, expected: tuple) -> None:
    """Exactly ``expected`` (no broadcasting): a wrong state shape must not pass silently."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{owner}: expected {name} of shape {shape_str(expected)}, got {shape_str(arr.shape)}")


def check_lengths(owner: str, lengths, batch: int, steps: int) -> np.ndarray | None:
    """``lengths`` (B,) of integers in [1, T], any order; returns an int64 copy (or None)."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{owner}: expected lengths of an integer dtype, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"{owner}: expected lengths of shape ({batch},), got {shape_str(arr.shape)}")
    if arr.size and (arr.min() < 1 or arr.max() > steps):
        raise ValueError(
            f"{owner}: expected every length in [1, {steps}] (T = {steps}), "
            f"got min {arr.min()} and max {arr.max()}"
        )
    return arr.astype(np.int64)


def as_generator(rng, owner: str = "rng") -> np.random.Generator:
    """``rng`` as a Generator: None (fresh entropy), an int seed >= 0, or a Generator itself."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, numbers.Integral):
        raise TypeError(f"{owner}: expected rng to be None, an int seed or a numpy.random.Generator, "
                        f"got {type(rng).__name__}")
    if rng < 0:
        raise ValueError(f"{owner}: expected rng seed >= 0, got {rng}")
    return np.random.default_rng(int(rng))


def check_ids(owner: str, name: str, ids, vocabulary: int) -> np.ndarray:
    """Integer token ids in [0, vocabulary)."""
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{owner}: expected {name} of an integer dtype, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocabulary):
        raise ValueError(f"{owner}: expected every id in [0, {vocabulary - 1}], got min {arr.min()} and max {arr.max()}")
    return arr


class PlainConfig:
    """``to_dict``/``from_dict`` for a dataclass whose fields are plain (JSON-ready) data."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; valid fields: {', '.join(sorted(known))}")
        return cls(**data)
