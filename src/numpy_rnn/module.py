"""The contract every layer and model shares: named parameters, their gradients, a mode.

A :class:`Module` (``SimpleRNN``, ``LSTM``, ``GRU``, any ``Recurrent``, ``Linear``,
``Embedding``, the notebook's ``RNN`` and ``SequenceModel``) has

* ``params``: ``dict[str, ndarray]``, the live parameter arrays under their public names
  (dotted for nested models: ``rnn.W``, ``head.b``); optimizers update them in place;
* ``grads``: a dict with the same keys, each array of its parameter's shape and dtype;
  ``backward`` adds into it and ``zero_grad()`` clears it;
* ``training`` with ``train(mode=True)`` and ``eval()``: a model passes the mode on to the
  modules it is made of (``children()``); only dropout reads it;
* ``state_dict()``: copies of the parameters, plain arrays keyed by their public names, and
  ``load_state_dict(state)``: checks that ``state`` has exactly those keys, each value of the
  parameter's exact shape and dtype, before copying anything in (the caller's arrays are never
  kept or changed).

A model made of modules keeps the arrays of its parts (the same objects) in its own ``params``
and ``grads``, so every entry point above sees one set of arrays.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import _checks

__all__ = ["Module"]


class Module:
    """Base class of layers and models; see the module docstring for the contract."""

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    training: bool = True

    def children(self) -> list[Module]:
        """The modules this one is made of (its attributes that are modules), in order."""
        return [value for value in vars(self).values() if isinstance(value, Module)]

    def zero_grad(self) -> None:
        """Set every gradient to zero."""
        for value in self.grads.values():
            value.fill(0.0)

    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout on) when ``mode``, else evaluation mode; returns ``self``."""
        self.training = _checks.check_bool(type(self).__name__, "mode", mode)
        for child in self.children():
            child.train(self.training)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off); returns ``self``."""
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, keyed by their public names."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state: Mapping) -> None:
        """Copy ``state`` (as :meth:`state_dict` returns it) into the parameters.

        Every key, shape and dtype is checked before anything changes: TypeError for a
        non-mapping or a wrong dtype, ValueError for missing or unexpected keys or a wrong shape.
        """
        owner = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"{owner}: expected state to be a dict of name -> array, got {type(state).__name__}")
        missing = [name for name in self.params if name not in state]
        unexpected = [name for name in state if name not in self.params]
        if missing or unexpected:
            raise ValueError(f"{owner}: expected state with keys {list(self.params)}; "
                             f"missing {missing}, unexpected {unexpected}")
        checked = {name: self._checked_parameter(name, value, f"state[{name!r}]") for name, value in state.items()}
        for name, value in checked.items():
            self.params[name][...] = value

    def _checked_parameter(self, name: str, value, arg: str) -> np.ndarray:
        """``value`` as a new value of parameter ``name``: its exact dtype and shape, or an error."""
        param = self.params[name]
        array = _checks.check_array(type(self).__name__, arg, value, param.dtype)
        _checks.check_shape(type(self).__name__, arg, array, param.shape)
        return array
