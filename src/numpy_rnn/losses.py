"""Loss functions that return the loss and its gradient with respect to the prediction.

Every loss is called as ``loss, grad = f(pred, target, reduction="mean", lengths=None)`` and
returns a Python float and an array of ``pred``'s shape and dtype.

Shapes (B batch, T steps, K outputs, C classes for cross-entropy):

- sequence-to-one: ``pred`` (B, K), or logits (B, C) with class targets (B,);
- per step (sequence-to-sequence): ``pred`` (B, T, K), or logits (B, T, C) with targets (B, T).
  ``lengths`` (B,) of ints in [1, T] then masks the steps ``t >= lengths[b]`` out of both the
  loss and the gradient: their gradient is exactly 0 and whatever they hold (even NaN) is unused.

``reduction="sum"`` adds the per-element losses ``l`` over the valid elements ``V``;
``reduction="mean"`` divides that sum by ``|V|``, the number of valid elements (for
cross-entropy an element is one (b, t) position, for the others one scalar output)::

    L = sum_{v in V} l_v            (sum)
    L = sum_{v in V} l_v / |V|      (mean)

The inputs are never modified.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._checks import FLOAT_DTYPES, check_lengths, lookup, shape_str

REDUCTIONS = ("mean", "sum")


def _check_pred(owner: str, name: str, pred) -> np.ndarray:
    """A float32/float64 ndarray of shape (B, K) or (B, T, K)."""
    if not isinstance(pred, np.ndarray) or pred.dtype not in FLOAT_DTYPES:
        kind = f"ndarray of dtype {pred.dtype}" if isinstance(pred, np.ndarray) else type(pred).__name__
        raise TypeError(f"{owner}: expected {name} to be a float32 or float64 ndarray, got {kind}")
    if pred.ndim not in (2, 3) or pred.size == 0:
        raise ValueError(
            f"{owner}: expected a non-empty {name} of shape (B, K) or (B, T, K), got {shape_str(pred.shape)}"
        )
    return pred


def _check_target(owner: str, target, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """``target`` of exactly ``shape`` and ``dtype``: nothing is broadcast or cast."""
    target = np.asarray(target)
    if target.dtype != dtype:
        raise TypeError(f"{owner}: expected target of dtype {dtype} (as the prediction), got {target.dtype}")
    if target.shape != shape:
        raise ValueError(f"{owner}: expected target of shape {shape_str(shape)}, got {shape_str(target.shape)}")
    return target


def _check_reduction(owner: str, reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{owner}: expected reduction in {REDUCTIONS}, got {reduction!r}")
    return reduction


def _step_mask(owner: str, lengths, pred: np.ndarray) -> np.ndarray | None:
    """The valid steps as a (B, T) bool mask ``t < lengths[b]``, or None when all are valid."""
    if lengths is None:
        return None
    if pred.ndim != 3:
        raise ValueError(
            f"{owner}: lengths needs per-step predictions of shape (B, T, K), "
            f"got {shape_str(pred.shape)}"
        )
    batch, steps = pred.shape[:2]
    lengths = check_lengths(owner, lengths, batch, steps)
    return np.arange(steps) < lengths[:, None]


def _valid(mask: np.ndarray | None, shape: tuple) -> np.ndarray:
    """``mask`` (B, T) broadcast to ``shape`` (B, T, ...); all True when there is no mask."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    return np.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - 2)), shape)


def _reduce(
    losses: np.ndarray, grad: np.ndarray, mask: np.ndarray | None, reduction: str
) -> tuple[float, np.ndarray]:
    """Sum (or average) ``losses`` over the valid elements; zero ``grad`` outside them."""
    valid = _valid(mask, losses.shape)
    loss = np.sum(losses, where=valid)
    grad = np.where(_valid(mask, grad.shape), grad, 0)
    if reduction == "mean":
        count = int(np.count_nonzero(valid))  # a Python int keeps float32 float32
        loss, grad = loss / count, grad / count
    return float(loss), grad


def mse(pred, target, *, reduction: str = "mean", lengths=None) -> tuple[float, np.ndarray]:
    """Mean squared error ``l = (p - y)**2`` with gradient ``dl/dp = 2 (p - y)``.

    ``pred`` and ``target`` have the same shape, (B, K) or (B, T, K), and the same float dtype.
    With ``reduction="mean"`` this equals ``torch.nn.functional.mse_loss`` over the valid elements.
    """
    pred = _check_pred("mse", "pred", pred)
    target = _check_target("mse", target, pred.shape, pred.dtype)
    reduction = _check_reduction("mse", reduction)
    mask = _step_mask("mse", lengths, pred)
    diff = pred - target
    return _reduce(diff * diff, 2 * diff, mask, reduction)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """``z - logsumexp(z)`` over the last axis, shifted by the maximum so ``exp`` never overflows."""
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax_cross_entropy(
    logits, target, *, reduction: str = "mean", lengths=None
) -> tuple[float, np.ndarray]:
    """Cross-entropy of integer class targets under ``softmax(logits)``.

    For logits ``z`` (..., C) and a class ``y`` in [0, C)::

        l = logsumexp(z) - z_y = -log softmax(z)_y
        dl/dz = softmax(z) - onehot(y)

    ``logits`` (B, C) with ``target`` (B,), or (B, T, C) with (B, T); targets of masked steps
    are not checked (padding may hold any integer). Equals ``torch.nn.functional.cross_entropy``.
    """
    owner = "softmax_cross_entropy"
    logits = _check_pred(owner, "logits", logits)
    reduction = _check_reduction(owner, reduction)
    mask = _step_mask(owner, lengths, logits)
    target = _check_classes(owner, target, logits.shape, _valid(mask, logits.shape[:-1]))
    log_probs = _log_softmax(logits)
    picked = np.take_along_axis(log_probs, target[..., None], axis=-1)[..., 0]
    onehot = target[..., None] == np.arange(logits.shape[-1])
    return _reduce(-picked, np.exp(log_probs) - onehot, mask, reduction)


def _check_classes(owner: str, target, shape: tuple, valid: np.ndarray) -> np.ndarray:
    """Integer classes of shape ``shape[:-1]`` in [0, C) where valid; 0 replaces masked entries."""
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{owner}: expected target of an integer dtype (class indices), got {target.dtype}")
    if target.shape != shape[:-1]:
        raise ValueError(
            f"{owner}: expected target of shape {shape_str(shape[:-1])} for logits of shape "
            f"{shape_str(shape)}, got {shape_str(target.shape)}"
        )
    classes = target[valid]
    if classes.size and (classes.min() < 0 or classes.max() >= shape[-1]):
        raise ValueError(
            f"{owner}: expected target classes in [0, {shape[-1] - 1}] (C = {shape[-1]}), "
            f"got min {classes.min()} and max {classes.max()}"
        )
    return np.where(valid, target, 0)


def bce_with_logits(
    logits, target, *, reduction: str = "mean", lengths=None
) -> tuple[float, np.ndarray]:
    """Binary cross-entropy of targets ``y`` in [0, 1] under ``sigmoid(logits)``, computed stably.

    For a logit ``x``::

        l = -y log sigmoid(x) - (1 - y) log(1 - sigmoid(x))
          = max(x, 0) - x y + log1p(exp(-|x|))
        dl/dx = sigmoid(x) - y

    with ``sigmoid(x) = 1 / (1 + exp(-x))`` for ``x >= 0`` and ``exp(x) / (1 + exp(x))`` otherwise,
    so no ``exp`` overflows. ``target`` has the shape and dtype of ``logits`` (soft labels allowed).
    Equals ``torch.nn.functional.binary_cross_entropy_with_logits``.
    """
    owner = "bce_with_logits"
    logits = _check_pred(owner, "logits", logits)
    target = _check_target(owner, target, logits.shape, logits.dtype)
    reduction = _check_reduction(owner, reduction)
    mask = _step_mask(owner, lengths, logits)
    labels = target[_valid(mask, target.shape)]
    if not np.all((labels >= 0) & (labels <= 1)):
        raise ValueError(
            f"{owner}: expected target values in [0, 1], got min {labels.min()} and max {labels.max()}"
        )
    decay = np.exp(-np.abs(logits))
    losses = np.maximum(logits, 0) - logits * target + np.log1p(decay)
    sigmoid = np.where(logits >= 0, 1 / (1 + decay), decay / (1 + decay))
    return _reduce(losses, sigmoid - target, mask, reduction)


LOSSES = {"mse": mse, "cross_entropy": softmax_cross_entropy, "bce": bce_with_logits}


def get_loss(name: str) -> Callable[..., tuple[float, np.ndarray]]:
    """The loss function registered as ``name`` in ``LOSSES``."""
    return lookup("get_loss", "loss", name, LOSSES)
