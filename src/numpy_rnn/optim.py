"""Optimizers, learning-rate schedules and gradient clipping, with torch.optim's update rules.

Parameters live in a ``dict[str, ndarray]`` keyed by dotted names (``"layers.0.W"``); gradients
in a dict with the same keys, shapes and dtypes. An optimizer keeps references to the model's
arrays and ``step(grads)`` updates them in place; it never modifies ``grads``.

All parameters form one group with one learning rate ``opt.lr``. Each optimizer follows the
single-tensor (``foreach=False``) code path of the torch.optim class of the same name, with
``maximize=False`` (and ``amsgrad=False`` for Adam/AdamW). In the equations ``g`` is the gradient,
``p`` the parameter, ``t`` the step count starting at 1, ``lambda`` the weight decay.

Every optimizer takes ``params``, that dict of the model's arrays, its learning rate ``lr``,
its weight decay ``weight_decay`` (``lambda``, 0: none) and, where it divides by a root,
``eps``, added to the denominator to keep it away from zero. Every schedule takes the
``optimizer`` whose ``lr`` it sets.

``state_dict()`` holds only Python scalars, strings, numpy arrays and nested dicts of them, so
it can be stored without pickle; per-parameter state is keyed by the parameter's name.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from ._checks import FLOAT_DTYPES, check_bool, check_real, check_size, lookup, shape_str


def _check_arrays(owner: str, name: str, arrays) -> dict[str, np.ndarray]:
    """A non-empty dict of writeable float32/float64 ndarrays with str keys, no array twice."""
    if not isinstance(arrays, dict):
        raise TypeError(f"{owner}: expected {name} to be a dict[str, ndarray], got {type(arrays).__name__}")
    if not arrays:
        raise ValueError(f"{owner}: expected a non-empty {name} dict, got {{}}")
    seen = {}
    for key, arr in arrays.items():
        if not isinstance(key, str):
            raise TypeError(f"{owner}: expected {name} keys to be str, got {type(key).__name__} {key!r}")
        if not isinstance(arr, np.ndarray) or arr.dtype not in FLOAT_DTYPES:
            kind = f"ndarray of dtype {arr.dtype}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise TypeError(f"{owner}: expected {name}[{key!r}] to be a float32 or float64 ndarray, got {kind}")
        if not arr.flags.writeable:
            raise ValueError(f"{owner}: expected {name}[{key!r}] to be writeable, got a read-only array")
        if id(arr) in seen:
            raise ValueError(f"{owner}: {name}[{key!r}] is the same array as {name}[{seen[id(arr)]!r}]")
        seen[id(arr)] = key
    return dict(arrays)


def _check_keys(owner: str, name: str, mapping, expected) -> None:
    """``mapping`` is a dict with exactly the keys ``expected``."""
    if not isinstance(mapping, dict):
        raise TypeError(f"{owner}: expected {name} to be a dict, got {type(mapping).__name__}")
    missing, extra = sorted(set(expected) - set(mapping)), sorted(set(mapping) - set(expected))
    if missing or extra:
        raise ValueError(f"{owner}: {name} keys differ: missing {missing}, unexpected {extra}")


def _check_like(owner: str, name: str, arrays, reference: dict[str, np.ndarray]) -> None:
    """``arrays`` has exactly the keys of ``reference``, each an ndarray of its shape and dtype."""
    _check_keys(owner, name, arrays, reference)
    for key, ref in reference.items():
        arr = arrays[key]
        if not isinstance(arr, np.ndarray) or arr.dtype != ref.dtype:
            kind = f"dtype {arr.dtype}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise TypeError(f"{owner}: expected {name}[{key!r}] to be an ndarray of dtype {ref.dtype}, got {kind}")
        if arr.shape != ref.shape:
            raise ValueError(
                f"{owner}: expected {name}[{key!r}] of shape {shape_str(ref.shape)}, got {shape_str(arr.shape)}"
            )


class Optimizer(ABC):
    """Base class: parameter references, hyper-parameters, step count and per-parameter state.

    A subclass defines ``_check_hyper`` (returns the validated hyper-parameters),
    ``_state_names`` (the state arrays each parameter needs under given hyper-parameters),
    ``_update`` (one in-place step of one parameter) and, where the state does not start at
    zero, ``_initial_state``. ``hyper`` holds the hyper-parameters by name, as the subclass's
    constructor received them.
    """

    def __init__(self, params, hyper: dict):
        owner = type(self).__name__
        self.params = _check_arrays(owner, "params", params)
        self.hyper = self._check_hyper(hyper)
        if self.hyper["lr"] == 0:
            raise ValueError(f"{owner}: expected lr > 0, got 0.0")
        self.step_count = 0
        self.state = {name: self._initial_state(p) for name, p in self.params.items()}

    @abstractmethod
    def _check_hyper(self, hyper: dict) -> dict:
        """Defined by each subclass."""

    @abstractmethod
    def _state_names(self, hyper: dict) -> tuple[str, ...]:
        """Defined by each subclass."""

    def _initial_state(self, param: np.ndarray) -> dict[str, np.ndarray]:
        return {key: np.zeros_like(param) for key in self._state_names(self.hyper)}

    @abstractmethod
    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """Defined by each subclass."""

    @property
    def lr(self) -> float:
        """The learning rate: > 0 at construction, then settable to any finite value >= 0."""
        return self.hyper["lr"]

    @lr.setter
    def lr(self, value) -> None:
        self.hyper["lr"] = check_real(type(self).__name__, "lr", value, low=0.0)

    def step(self, grads: dict[str, np.ndarray]) -> None:
        """Update every parameter in place from ``grads`` (same keys, shapes and dtypes; unmodified)."""
        _check_like(type(self).__name__, "grads", grads, self.params)
        self.step_count += 1
        for name, param in self.params.items():
            self._update(param, grads[name], self.state[name])

    def state_dict(self) -> dict:
        """``{"type": class name, "step": int, "hyper": {...}, "state": {param name: {...}}}`` (copies)."""
        return {
            "type": type(self).__name__,
            "step": self.step_count,
            "hyper": dict(self.hyper),
            "state": {name: {k: v.copy() for k, v in st.items()} for name, st in self.state.items()},
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Validate ``state_dict`` against this optimizer and its parameters, then copy it in.

        Nothing changes unless all of it is valid; the hyper-parameters (lr too) are loaded.
        A parameter without state arrays (plain SGD) may be left out of ``state_dict["state"]``,
        and ``"state"`` itself too: flat stores such as ``np.savez`` drop empty dicts.
        """
        owner = type(self).__name__
        if isinstance(state_dict, dict):
            state_dict = {"state": {}, **state_dict}
        _check_keys(owner, "state_dict", state_dict, ("type", "step", "hyper", "state"))
        if str(state_dict["type"]) != owner:
            raise ValueError(f"{owner}: expected a state_dict of type {owner!r}, got {state_dict['type']!r}")
        _check_keys(owner, "state_dict['hyper']", state_dict["hyper"], self.hyper)
        hyper = self._check_hyper(state_dict["hyper"])
        step = check_size(owner, "state_dict['step']", state_dict["step"], minimum=0)
        if not isinstance(state_dict["state"], dict):
            kind = type(state_dict["state"]).__name__
            raise TypeError(f"{owner}: expected state_dict['state'] to be a dict, got {kind}")
        states = {**{name: {} for name in self.params}, **state_dict["state"]}
        _check_keys(owner, "state_dict['state']", states, self.params)
        names = self._state_names(hyper)
        for name, param in self.params.items():
            _check_like(owner, f"state_dict['state'][{name!r}]", states[name], {k: param for k in names})
        self.hyper, self.step_count = hyper, step
        self.state = {name: {k: states[name][k].copy() for k in names} for name in self.params}


_LABELS = {"beta1": "betas[0]", "beta2": "betas[1]"}  # Adam's hyper names -> its argument
_UNIT = {"low": 0.0, "high": 1.0, "high_open": True}  # [0, 1)
_POSITIVE = {"low": 0.0, "low_open": True}  # (0, inf)
_NONNEGATIVE = {"low": 0.0}  # [0, inf)


def _check_common(owner: str, hyper: dict, **limits) -> dict:
    """The hyper-parameters every optimizer shares (lr, weight_decay) plus ``limits`` per name.

    ``limits[name]`` holds the keyword arguments of ``check_real`` (``"bool"`` for flags).
    """
    checked = {
        "lr": check_real(owner, "lr", hyper["lr"], low=0.0),
        "weight_decay": check_real(owner, "weight_decay", hyper["weight_decay"], low=0.0),
    }
    for name, limit in limits.items():
        label, value = _LABELS.get(name, name), hyper[name]
        if limit == "bool":
            checked[name] = check_bool(owner, label, value)
        else:
            checked[name] = check_real(owner, label, value, **limit)
    return checked


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    As ``torch.optim.SGD``; ``b`` is the momentum buffer, ``mu`` the momentum, ``tau`` the dampening::

        g <- g + lambda p
        b <- g                                  (t = 1)
        b <- mu b + (1 - tau) g                 (t > 1)
        g <- g + mu b  (nesterov)   or   g <- b (momentum > 0)
        p <- p - lr g

    ``momentum`` is ``mu`` (0: plain gradient descent), ``dampening`` ``tau``; ``nesterov=True``
    takes Nesterov's step, which needs ``momentum > 0`` and ``dampening == 0``.
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov,
                                  "weight_decay": weight_decay, "dampening": dampening})

    def _check_hyper(self, hyper):
        checked = _check_common("SGD", hyper, momentum=_NONNEGATIVE, nesterov="bool",
                                dampening={"low": 0.0, "high": 1.0})
        if checked["nesterov"] and (checked["momentum"] == 0 or checked["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov=True needs momentum > 0 and dampening == 0, "
                f"got momentum={checked['momentum']} and dampening={checked['dampening']}"
            )
        return checked

    def _state_names(self, hyper):
        return ("momentum_buffer",) if hyper["momentum"] > 0 else ()

    def _update(self, param, grad, state):
        h = self.hyper
        if h["weight_decay"]:
            grad = grad + h["weight_decay"] * param
        if h["momentum"]:
            buf = state["momentum_buffer"]
            if self.step_count == 1:
                buf[...] = grad
            else:
                buf *= h["momentum"]
                buf += (1 - h["dampening"]) * grad
            grad = grad + h["momentum"] * buf if h["nesterov"] else buf
        param -= h["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient, as ``torch.optim.Adam``;
    ``betas`` is ``(beta1, beta2)``::

        g <- g + lambda p
        m <- m + (1 - beta1) (g - m)            (= beta1 m + (1 - beta1) g)
        v <- beta2 v + (1 - beta2) g^2
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        owner = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{owner}: expected betas to be a pair (beta1, beta2), got {betas!r}")
        super().__init__(params, {"lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps,
                                  "weight_decay": weight_decay})

    def _check_hyper(self, hyper):
        return _check_common(type(self).__name__, hyper, beta1=_UNIT, beta2=_UNIT, eps=_POSITIVE)

    def _state_names(self, hyper):
        return ("exp_avg", "exp_avg_sq")

    def _update(self, param, grad, state):
        h, t = self.hyper, self.step_count
        if h["weight_decay"] and self._decoupled:
            param *= 1 - h["lr"] * h["weight_decay"]
        elif h["weight_decay"]:
            grad = grad + h["weight_decay"] * param
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - h["beta1"]) * (grad - m)
        v *= h["beta2"]
        v += (1 - h["beta2"]) * grad * grad
        step_size = h["lr"] / (1 - h["beta1"] ** t)
        denom = np.sqrt(v) / math.sqrt(1 - h["beta2"] ** t) + h["eps"]
        param -= step_size * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``, with
    :class:`Adam`'s ``betas``; ``weight_decay`` defaults to torch's 0.01.

    The decay shrinks the parameter before the Adam step and does not enter ``m`` or ``v``::

        p <- p (1 - lr lambda)
        then Adam's step with g unchanged
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """RMSprop (Hinton), optionally centered and with momentum, as ``torch.optim.RMSprop``::

        g <- g + lambda p
        v <- alpha v + (1 - alpha) g^2
        a <- a + (1 - alpha) (g - a)            (centered only)
        d <- sqrt(v - a^2) + eps  (centered)   or   d <- sqrt(v) + eps
        b <- mu b + g / d,  p <- p - lr b       (momentum mu > 0)
        p <- p - lr g / d                       (otherwise)

    ``alpha`` is the smoothing constant, ``momentum`` ``mu``, ``centered=True`` subtracts the
    squared mean gradient ``a^2``. Centered, ``v - a^2`` is clipped at 0 (rounding can make it
    slightly negative; torch gives NaN).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0, centered=False):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "momentum": momentum,
                                  "weight_decay": weight_decay, "centered": centered})

    def _check_hyper(self, hyper):
        return _check_common("RMSprop", hyper, alpha=_UNIT, eps=_POSITIVE, momentum=_NONNEGATIVE,
                             centered="bool")

    def _state_names(self, hyper):
        names = ("square_avg",)
        if hyper["momentum"] > 0:
            names += ("momentum_buffer",)
        if hyper["centered"]:
            names += ("grad_avg",)
        return names

    def _update(self, param, grad, state):
        h = self.hyper
        if h["weight_decay"]:
            grad = grad + h["weight_decay"] * param
        v = state["square_avg"]
        v *= h["alpha"]
        v += (1 - h["alpha"]) * grad * grad
        if h["centered"]:
            a = state["grad_avg"]
            a += (1 - h["alpha"]) * (grad - a)
            denom = np.sqrt(np.maximum(v - a * a, 0)) + h["eps"]
        else:
            denom = np.sqrt(v) + h["eps"]
        if h["momentum"]:
            buf = state["momentum_buffer"]
            buf *= h["momentum"]
            buf += grad / denom
            param -= h["lr"] * buf
        else:
            param -= h["lr"] * grad / denom


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.) with learning-rate decay ``lr_decay``, as ``torch.optim.Adagrad``;
    ``initial_accumulator_value`` is where every ``s`` starts::

        g <- g + lambda p
        s <- s + g^2                            (s starts at initial_accumulator_value)
        p <- p - lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value, "eps": eps})

    def _check_hyper(self, hyper):
        return _check_common("Adagrad", hyper, lr_decay=_NONNEGATIVE, eps=_POSITIVE,
                             initial_accumulator_value=_NONNEGATIVE)

    def _state_names(self, hyper):
        return ("sum",)

    def _initial_state(self, param):
        return {"sum": np.full_like(param, self.hyper["initial_accumulator_value"])}

    def _update(self, param, grad, state):
        h = self.hyper
        if h["weight_decay"]:
            grad = grad + h["weight_decay"] * param
        s = state["sum"]
        s += grad * grad
        clr = h["lr"] / (1 + (self.step_count - 1) * h["lr_decay"])
        param -= clr * grad / (np.sqrt(s) + h["eps"])


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get_optimizer(name: str, params, **kwargs) -> Optimizer:
    """``OPTIMIZERS[name](params, **kwargs)``: the optimizer registered as ``name`` (e.g.
    ``"adam"``) over ``params``; an unknown name lists the valid ones."""
    return lookup("get_optimizer", "optimizer", name, OPTIMIZERS)(params, **kwargs)


class LRScheduler(ABC):
    """Base class: sets ``optimizer.lr`` to ``lr_at(n)`` after the n-th ``step()`` (n = 0 on creation).

    ``base_lr`` is the optimizer's lr when the schedule is created. Each lr comes from the
    closed form ``lr_at``, so an lr set by hand is overwritten at the next ``step()``.
    """

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_step = 0
        optimizer.lr = self.lr_at(0)

    @abstractmethod
    def lr_at(self, step: int) -> float:
        """The learning rate after ``step`` steps (0: on creation); defined by each subclass."""

    def step(self) -> None:
        """Advance one step (one epoch or one batch, as the caller counts) and set the optimizer's lr."""
        self.last_step += 1
        self.optimizer.lr = self.lr_at(self.last_step)

    @abstractmethod
    def _hyper(self) -> dict:
        """Defined by each subclass."""

    def state_dict(self) -> dict:
        """``{"type": class name, "last_step": int, "base_lr": float, "hyper": {...}}``."""
        return {"type": type(self).__name__, "last_step": self.last_step, "base_lr": self.base_lr,
                "hyper": self._hyper()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Check ``state_dict`` matches this schedule's type and settings, load its position and set the lr."""
        owner = type(self).__name__
        _check_keys(owner, "state_dict", state_dict, ("type", "last_step", "base_lr", "hyper"))
        if str(state_dict["type"]) != owner:
            raise ValueError(f"{owner}: expected a state_dict of type {owner!r}, got {state_dict['type']!r}")
        if state_dict["hyper"] != self._hyper():
            raise ValueError(f"{owner}: expected hyper {self._hyper()}, got {state_dict['hyper']}")
        last_step = check_size(owner, "state_dict['last_step']", state_dict["last_step"], minimum=0)
        self.base_lr = check_real(owner, "state_dict['base_lr']", state_dict["base_lr"], low=0.0)
        self.last_step = last_step
        self.optimizer.lr = self.lr_at(last_step)


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (n // step_size)`` (``torch.optim.lr_scheduler.StepLR``): the lr
    multiplied by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = check_size("StepLR", "step_size", step_size)
        self.gamma = check_real("StepLR", "gamma", gamma, **_POSITIVE)
        super().__init__(optimizer)

    def lr_at(self, step: int) -> float:
        return self.base_lr * self.gamma ** (step // self.step_size)

    def _hyper(self):
        return {"step_size": self.step_size, "gamma": self.gamma}


class CosineLR(LRScheduler):
    """Cosine annealing from ``base_lr`` to ``min_lr`` over ``total_steps`` steps::

        lr = min_lr + (base_lr - min_lr) (1 + cos(pi n / total_steps)) / 2

    the closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total_steps,
    eta_min=min_lr)``. As there, the formula continues past ``total_steps``: the lr rises
    again, back to ``base_lr`` at ``2 total_steps``; stop stepping at ``total_steps`` to stay at min_lr.
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, min_lr: float = 0.0):
        self.total_steps = check_size("CosineLR", "total_steps", total_steps)
        self.min_lr = check_real("CosineLR", "min_lr", min_lr, **_NONNEGATIVE)
        super().__init__(optimizer)

    def lr_at(self, step: int) -> float:
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * step / self.total_steps)) / 2

    def _hyper(self):
        return {"total_steps": self.total_steps, "min_lr": self.min_lr}


class WarmupLR(LRScheduler):
    """Linear warm-up over ``warmup_steps`` steps, then the schedule ``after`` (if any)::

        lr = base_lr (1/W + (1 - 1/W) min(n, W) / W)     n < W, or always when after is None
        lr = after.lr_at(n - W)                           n >= W

    with ``W = warmup_steps``: the lr starts at ``base_lr / W`` and reaches ``base_lr`` at step W.
    This is torch's ``LinearLR(start_factor=1/W, total_iters=W)``, chained with
    ``SequentialLR(..., milestones=[W])``. Create ``after`` first, on the same optimizer; its
    step count follows this one's (``n - W``) and it is saved inside this state_dict.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, after: LRScheduler | None = None):
        self.warmup_steps = check_size("WarmupLR", "warmup_steps", warmup_steps)
        if after is not None and not isinstance(after, LRScheduler):
            raise TypeError(f"WarmupLR: expected after to be an LRScheduler or None, got {type(after).__name__}")
        if after is not None and (after.optimizer is not optimizer or after.last_step != 0):
            raise ValueError("WarmupLR: expected after to be a new schedule (last_step 0) of the same optimizer")
        self.after = after
        super().__init__(optimizer)

    def lr_at(self, step: int) -> float:
        if self.after is not None and step >= self.warmup_steps:
            return self.after.lr_at(step - self.warmup_steps)
        start = 1 / self.warmup_steps
        return self.base_lr * (start + (1 - start) * min(step, self.warmup_steps) / self.warmup_steps)

    def step(self) -> None:
        super().step()
        if self.after is not None:
            self.after.last_step = max(self.last_step - self.warmup_steps, 0)

    def _hyper(self):
        return {"warmup_steps": self.warmup_steps}

    def state_dict(self) -> dict:
        """As ``LRScheduler.state_dict``, plus ``"after"``: the state_dict of ``after`` (if any)."""
        state = super().state_dict()
        if self.after is not None:
            state["after"] = self.after.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load ``after``'s state first, then this schedule's (which sets the lr), both from
        ``state_dict`` as :meth:`state_dict` returned it."""
        _check_keys("WarmupLR", "state_dict", state_dict, self.state_dict())
        if self.after is not None:
            self.after.load_state_dict(state_dict["after"])
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "after"})


def l2_norm(values) -> np.floating:
    """``||values||_2`` of an array (or a list of numbers), finite whenever every value is: a
    NumPy scalar of their dtype, ``np.linalg.norm``'s to the last bit, except where its squares
    overflow (float32 from about 1.8e19, float64 from about 1.3e154); there it is measured
    again in float64, scaled by the largest ``|value|``."""
    with np.errstate(over="ignore"):
        norm = np.linalg.norm(values)
    if np.isinf(norm):
        values = np.asarray(values, dtype=np.float64)
        largest = np.max(np.abs(values))
        if np.isfinite(largest):
            norm = largest * np.linalg.norm(values / largest)
    return norm


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients ``grads`` (name -> array) IN PLACE so that their global L2 norm is
    at most ``max_norm``.

    ``norm = sqrt(sum over arrays of ||g||^2)`` is returned as measured BEFORE clipping, finite
    whenever every gradient is (:func:`l2_norm`: float32 squares overflow long before the
    gradients do). As in ``torch.nn.utils.clip_grad_norm_``, every array is multiplied by
    ``coef = max_norm / (norm + 1e-6)`` when ``coef < 1`` and left alone otherwise. A non-finite
    norm leaves the gradients unchanged (torch would fill them with NaN); check
    ``math.isfinite`` on the result to skip such a step.
    """
    grads = _check_arrays("clip_grad_norm", "grads", grads)
    max_norm = check_real("clip_grad_norm", "max_norm", max_norm, **_POSITIVE)
    norm = float(l2_norm([l2_norm(g) for g in grads.values()]))
    coef = max_norm / (norm + 1e-6)
    if math.isfinite(norm) and coef < 1:
        for g in grads.values():
            g *= coef
    return norm


def clip_grad_value(grads: dict[str, np.ndarray], clip_value: float) -> None:
    """Clip every element of ``grads`` (name -> array) IN PLACE to ``[-clip_value, clip_value]``
    (torch's ``clip_grad_value_``)."""
    grads = _check_arrays("clip_grad_value", "grads", grads)
    clip_value = check_real("clip_grad_value", "clip_value", clip_value, **_POSITIVE)
    for g in grads.values():
        np.clip(g, -clip_value, clip_value, out=g)
