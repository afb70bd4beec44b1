"""Conversion between numpy_rnn's recurrent layers and torch.nn.RNN, LSTM and GRU.

The maths is the same; only the layout differs. For layer ``k`` (and ``_reverse`` for the
backward direction of a bidirectional layer)::

    torch                       numpy_rnn
    weight_ih_l{k}  (G*H, D)    W.T       W (D, G*H)
    weight_hh_l{k}  (G*H, H)    R.T       R (H, G*H)
    bias_ih_l{k}    (G*H,)      b         b (G*H,)
    bias_hh_l{k}    (G*H,)      0         (summed into b on loading)
    weight_hr_l{k}  (P, H)      W_hr.T    W_hr (H, P), LSTM with proj_size = P only

torch adds two biases where one suffices, except in the GRU's ``n`` block (the last ``H``
entries), where ``bias_hh`` sits inside the reset gate: ``n = tanh(x W_n + b_n + r * (h R_n
+ b_hn))``. There ``bias_hh``'s ``n`` block is our ``b_hn`` and is never summed into ``b``.
A layer built with ``bias=False`` has neither ``b`` nor ``b_hn``, as torch's ``bias=False``
has neither ``bias_ih`` nor ``bias_hh``. An LSTM with projections (``proj_size = P``) reads
``h`` of width ``P``: there ``weight_hh`` is ``(4H, P)`` and a higher layer's ``weight_ih``
``(4H, directions*P)``.

Gradients: ``to_torch_state_dict(layer, layer.grads)`` converts gradients with the same
rule. torch's ``bias_ih`` and ``bias_hh`` gradients are equal wherever both biases enter the
same sum (every block of RNN and LSTM, the ``r`` and ``z`` blocks of GRU), and both equal our
``b`` gradient; the converted ``bias_ih`` is therefore torch's ``bias_ih.grad``, while the
converted ``bias_hh`` carries only the ``b_hn`` gradient in the GRU's ``n`` block and zeros
elsewhere. Compare ours ``bias_ih`` with torch's ``bias_ih.grad`` everywhere, and with
``bias_hh.grad`` where they coincide.

Layers whose cell has ``torch_equivalent = None`` (LSTM peepholes, GRU with
``reset_after=False``, layer normalisation, custom cells) have no torch counterpart and raise ``ValueError``.
This module needs torch only for :func:`to_torch_module`; tensors are accepted anywhere by
duck typing (``.detach().cpu().numpy()``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from . import _checks
from .cells import GRUCell, LSTMCell
from .layer_norm import LayerNormCell
from .layers import Recurrent

if TYPE_CHECKING:  # torch is optional: imported where a conversion needs it
    import torch

__all__ = ["load_torch_state_dict", "to_torch_module", "to_torch_state_dict"]


def _why_no_torch(cell) -> str:
    """Why torch has no layer computing this cell's maths."""
    if isinstance(cell, LayerNormCell):
        return ("torch.nn.LSTM and torch.nn.GRU have no layer normalisation (g_x, g_h, beta); "
                "build the layer with layer_norm=False")
    if isinstance(cell, LSTMCell) and cell.peepholes:
        return "torch.nn.LSTM has no peephole connections (p_i, p_f, p_o); build LSTM(peepholes=False)"
    if isinstance(cell, GRUCell) and not cell.reset_after:
        return ("torch.nn.GRU applies the reset gate after the recurrent matmul only; "
                "build GRU(reset_after=True)")
    return f"its cell {type(cell).__name__} declares no torch_equivalent"


def _options_torch_lacks(layer, module: bool) -> list[str]:
    """The layer options torch's layers cannot compute: merge modes other than concat,
    go_backwards and zoneout change the function itself; input and recurrent dropout only its
    training mode, so their weights convert and only a torch module (``module``) is refused."""
    lacks = [f"merge_mode={layer.merge_mode!r} (torch concatenates the directions: merge_mode='concat')"
             ] if layer.merge_mode != "concat" else []
    lacks += ["go_backwards=True (torch reads forward; reverse the input yourself)"] if layer.go_backwards else []
    lacks += [f"zoneout={layer.zoneout} (torch has no zoneout)"] if any(layer.zoneout) else []
    if module:
        lacks += [f"{name}={getattr(layer, name)} (torch's layers have dropout between layers only)"
                  for name in ("input_dropout", "recurrent_dropout") if getattr(layer, name)]
    return lacks


def _check_convertible(owner: str, layer, module: bool = False) -> None:
    """A recurrent layer whose cell and options torch can compute, else TypeError / ValueError
    (``module``: a torch module is to compute it, training included)."""
    if not isinstance(layer, Recurrent):
        raise TypeError(f"{owner}: expected a recurrent layer (SimpleRNN, LSTM, GRU), got {type(layer).__name__}")
    if layer.cell.torch_equivalent is None:
        raise ValueError(f"{owner}: torch has no layer equivalent to {layer!r}: {_why_no_torch(layer.cell)}")
    lacks = _options_torch_lacks(layer, module)
    if lacks:
        raise ValueError(f"{owner}: torch has no layer equivalent to {layer!r}: it has no {'; no '.join(lacks)}")


def _check_names(owner: str, what: str, expected, got) -> None:
    """Exactly the ``expected`` names, else a ValueError listing the missing and unexpected ones."""
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{owner}: {what} does not match the layer: missing keys {missing}, unexpected keys {unexpected}")


def _suffix(layer: int, direction: int) -> str:
    """torch's parameter-name suffix, e.g. ``_l1_reverse``."""
    return f"_l{layer}{'_reverse' if direction else ''}"


def to_torch_state_dict(layer, arrays=None) -> dict[str, np.ndarray]:
    """torch's state dict of ``layer`` as contiguous NumPy copies, keyed as torch names them.

    ``arrays`` defaults to ``layer.params``; pass ``layer.grads`` to convert gradients (see the
    module docstring for how the bias gradients compare with torch's). Wrap the values with
    ``torch.from_numpy`` to load them into a torch module.
    """
    owner = "to_torch_state_dict"
    _check_convertible(owner, layer)
    arrays = layer.params if arrays is None else arrays
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{owner}: expected arrays to be a dict like layer.params, got {type(arrays).__name__}")
    _check_names(owner, "arrays", layer.params, arrays)
    for key, value in layer.params.items():
        _checks.check_shape(owner, f"arrays[{key!r}]", np.asarray(arrays[key]), value.shape)
    H, state_dict = layer.hidden_size, {}
    for _, k, direction, prefix in layer.runs():
        p, sfx = layer.view(arrays, prefix), _suffix(k, direction)
        state_dict[f"weight_ih{sfx}"] = np.array(p["W"].T, order="C")
        state_dict[f"weight_hh{sfx}"] = np.array(p["R"].T, order="C")
        if layer.bias:
            bias_hh = np.zeros_like(p["b"])
            if "b_hn" in p:
                bias_hh[2 * H:] = p["b_hn"]
            state_dict[f"bias_ih{sfx}"] = np.array(p["b"], order="C")
            state_dict[f"bias_hh{sfx}"] = bias_hh
        if "W_hr" in p:  # LSTM with projections
            state_dict[f"weight_hr{sfx}"] = np.array(p["W_hr"].T, order="C")
    return state_dict


def _as_numpy(value) -> np.ndarray:
    """A torch tensor (duck-typed) or array-like as an ndarray; tensors are not copied here."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _checked_arrays(owner: str, layer, state_dict) -> dict[str, np.ndarray]:
    """``state_dict`` as ndarrays with exactly torch's names, shapes and the layer's dtype."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{owner}: expected state_dict to be a mapping of name -> tensor or array, "
                        f"got {type(state_dict).__name__}")
    reference = to_torch_state_dict(layer)
    _check_names(owner, "state_dict", reference, state_dict)
    arrays = {}
    for key, ref in reference.items():
        value = _as_numpy(state_dict[key])
        if value.dtype != layer.dtype:
            raise TypeError(f"{owner}: expected {key} of dtype {layer.dtype} (the layer's dtype), got {value.dtype}; "
                            f"convert it explicitly (a module's .to(torch.{layer.dtype.name}) or .astype)")
        _checks.check_shape(owner, key, value, ref.shape)
        arrays[key] = value
    return arrays


def load_torch_state_dict(layer, state_dict) -> None:
    """Copy ``state_dict``, a torch RNN/LSTM/GRU state dict (tensors or arrays), into
    ``layer.params`` in place.

    ``W = weight_ih.T``, ``R = weight_hh.T``, ``W_hr = weight_hr.T`` (projections) and
    ``b = bias_ih + bias_hh``; for GRU the
    ``n`` block of ``b`` is ``bias_ih``'s alone and ``b_hn`` is ``bias_hh``'s ``n`` block.
    Names, shapes and dtypes (which must be the layer's: nothing is cast) are all checked
    before anything is written, so on an error the layer is unchanged. The layer never
    aliases the caller's arrays.
    """
    arrays = _checked_arrays("load_torch_state_dict", layer, state_dict)
    H, new = layer.hidden_size, {}
    for _, k, direction, prefix in layer.runs():
        sfx = _suffix(k, direction)
        new[prefix + "W"] = arrays[f"weight_ih{sfx}"].T
        new[prefix + "R"] = arrays[f"weight_hh{sfx}"].T
        if prefix + "W_hr" in layer.params:  # LSTM with projections
            new[prefix + "W_hr"] = arrays[f"weight_hr{sfx}"].T
        if not layer.bias:
            continue
        bias_ih, bias_hh = arrays[f"bias_ih{sfx}"], arrays[f"bias_hh{sfx}"]
        if prefix + "b_hn" in layer.params:  # GRU: bias_hh's n block stays inside the reset gate
            new[prefix + "b"] = np.concatenate([bias_ih[:2 * H] + bias_hh[:2 * H], bias_ih[2 * H:]])
            new[prefix + "b_hn"] = bias_hh[2 * H:]
        else:
            new[prefix + "b"] = bias_ih + bias_hh
    for key, value in new.items():
        layer.params[key][...] = value


def to_torch_module(layer: Recurrent) -> torch.nn.Module:
    """A ``torch.nn.RNN``/``LSTM``/``GRU`` computing the same function as ``layer``.

    Same sizes, ``num_layers``, ``bidirectional``, ``bias``, ``nonlinearity``, ``proj_size``, ``dropout``,
    dtype and training mode, ``batch_first=True``, loaded with the layer's weights. Imports torch.
    """
    _check_convertible("to_torch_module", layer, module=True)
    import torch

    kind = layer.cell.torch_equivalent
    options = {"nonlinearity": layer.cell.nonlinearity} if kind == "RNN" else {}
    if getattr(layer.cell, "proj_size", 0):
        options["proj_size"] = layer.cell.proj_size
    module = getattr(torch.nn, kind)(
        layer.input_size, layer.hidden_size, layer.num_layers, bias=layer.bias, batch_first=True,
        dropout=layer.dropout, bidirectional=layer.bidirectional, dtype=getattr(torch, layer.dtype.name), **options,
    )
    module.load_state_dict({key: torch.from_numpy(value) for key, value in to_torch_state_dict(layer).items()})
    return module.train(layer.training)
