"""RTRL against BPTT for every cell (built-in and custom), the state it carries, and bad input.

BPTT is the reference: ``layer.forward(x, state)`` then ``layer.backward(d_out)``; RTRL must give
the same ``layer.grads`` to 1e-10 relative in float64 after ``T`` steps with
``accumulate(d_out[:, t])`` at each.
"""
import re
from typing import NamedTuple

import numpy as np
import pytest

from numpy_rnn.cells import Cell, ElmanCell, GRUCell, LSTMCell, sigmoid, step_vjps
from numpy_rnn.layers import GRU, LSTM, Linear, Recurrent, SimpleRNN
from numpy_rnn.rtrl import RTRL

T, D, H, B = 7, 3, 5, 2  # all different
P = 4  # proj_size of the LSTMs with projections: the width of their h


class IndRNNCell(Cell):
    """docs/custom_cells.md's IndRNN (tanh): its own ``recurrent_grads``, no per-row method."""

    def param_shapes(self):
        return {"u": (self.hidden_size,)}

    def step(self, p, xw, state):
        h = np.tanh(xw + p["u"][..., None, :] * state[0])
        return (h,), h

    def step_backward(self, p, g, d_state, h):
        ds = d_state[0] * (1.0 - h * h)
        return ds, ds, (ds * p["u"],)

    def recurrent_grads(self, p, g, h_prev, d_rec, caches):
        g["u"] += np.einsum("tbh,tbh->h", d_rec, h_prev)


class IndRNNRowsCell(IndRNNCell):
    """IndRNN with the optional per-row method: RTRL's fast path for a custom cell."""

    row_calls = 0

    def recurrent_row_grads(self, p, h_prev, d_rec, cache):
        IndRNNRowsCell.row_calls += 1
        return {"u": d_rec * h_prev}


class CIFGCache(NamedTuple):
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c_prev: np.ndarray
    tanh_c: np.ndarray


class CIFGCell(Cell):
    """docs/custom_cells.md's coupled-gate LSTM: two state parts, the default ``recurrent_grads``."""

    num_gates = 3
    state_names = ("h", "c")

    def step(self, p, xw, state):
        h_prev, c_prev = state
        H_ = self.hidden_size
        z = xw + h_prev @ p["R"]
        f, g, o = sigmoid(z[..., :H_]), np.tanh(z[..., H_:2 * H_]), sigmoid(z[..., 2 * H_:])
        c = f * c_prev + (1.0 - f) * g
        tanh_c = np.tanh(c)
        return (o * tanh_c, c), CIFGCache(f, g, o, c_prev, tanh_c)

    def step_backward(self, p, g, d_state, cache):
        dh, dc = d_state
        f, o, tanh_c = cache.f, cache.o, cache.tanh_c
        dz_o = dh * tanh_c * o * (1.0 - o)
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
        dz_f = dc * (cache.c_prev - cache.g) * f * (1.0 - f)
        dz_g = dc * (1.0 - f) * (1.0 - cache.g * cache.g)
        dz = np.concatenate([dz_f, dz_g, dz_o], axis=-1)
        return dz, dz, (dz @ p["R"].T, dc * f)


class StepwiseElmanCell(ElmanCell):
    """Elman whose ``step_backward`` adds ``dR`` into ``g`` itself (``d_rec`` None)."""

    def step(self, p, xw, state):
        new_state, cache = super().step(p, xw, state)
        return new_state, (cache, state[0])

    def step_backward(self, p, g, d_state, cache):
        elman_cache, h_prev = cache
        ds, _, d_prev = super().step_backward(p, g, d_state, elman_cache)
        g["R"] += h_prev.T @ ds
        return ds, None, d_prev


LAYERS = {
    "elman-tanh": lambda dtype=np.float64: SimpleRNN(D, H, rng=1, dtype=dtype),
    "elman-relu": lambda dtype=np.float64: SimpleRNN(D, H, nonlinearity="relu", rng=1, dtype=dtype),
    "lstm": lambda dtype=np.float64: LSTM(D, H, rng=1, dtype=dtype),
    "lstm-peepholes": lambda dtype=np.float64: LSTM(D, H, peepholes=True, rng=1, dtype=dtype),
    "lstm-proj": lambda dtype=np.float64: LSTM(D, H, proj_size=P, rng=1, dtype=dtype),
    "lstm-proj-peepholes": lambda dtype=np.float64: LSTM(D, H, proj_size=P, peepholes=True, rng=1, dtype=dtype),
    "gru": lambda dtype=np.float64: GRU(D, H, rng=1, dtype=dtype),
    "gru-reset-before": lambda dtype=np.float64: GRU(D, H, reset_after=False, rng=1, dtype=dtype),
    "lstm-no-bias": lambda dtype=np.float64: LSTM(D, H, bias=False, rng=1, dtype=dtype),
    "gru-no-bias": lambda dtype=np.float64: GRU(D, H, bias=False, rng=1, dtype=dtype),
    "custom-indrnn": lambda dtype=np.float64: Recurrent(D, H, cell=IndRNNCell, rng=1, dtype=dtype),
    "custom-indrnn-rows": lambda dtype=np.float64: Recurrent(D, H, cell=IndRNNRowsCell, rng=1, dtype=dtype),
    "custom-cifg": lambda dtype=np.float64: Recurrent(D, H, cell=CIFGCell, rng=1, dtype=dtype),
    "custom-stepwise": lambda dtype=np.float64: Recurrent(D, H, cell=StepwiseElmanCell, rng=1, dtype=dtype),
}


def random_state(layer, rng, batch=B):
    parts = tuple(rng.standard_normal((1, batch, width)).astype(layer.dtype) for width in layer.cell.state_widths)
    return parts if len(parts) > 1 else parts[0]


def parts(state):
    """A layer's state as a tuple of its parts."""
    return state if isinstance(state, tuple) else (state,)


def bptt_grads(layer, x, state, d_out):
    layer.zero_grad()
    out, state_n = layer.forward(x, state)
    layer.backward(d_out)
    return out, state_n, {name: value.copy() for name, value in layer.grads.items()}


def rtrl_run(layer, x, state, d_out):
    """``layer.grads`` after RTRL over ``x``, with every step's output."""
    layer.zero_grad()
    rtrl = RTRL(layer)
    rtrl.reset(x.shape[0], state)
    outs = []
    for t in range(x.shape[1]):
        outs.append(rtrl.step(x[:, t]))
        rtrl.accumulate(d_out[:, t])
    return rtrl, np.stack(outs, axis=1)


def assert_grads_equal(actual, expected, rtol):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert actual[name].dtype == value.dtype
        scale = np.abs(value).max()
        np.testing.assert_allclose(actual[name], value, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("kind", LAYERS)
def test_rtrl_gradients_equal_bptt(kind, with_state, rng):
    layer = LAYERS[kind]()
    x = rng.standard_normal((B, T, D))
    d_out = rng.standard_normal((B, T, layer.h_size))
    state = random_state(layer, rng) if with_state else None
    out, state_n, expected = bptt_grads(layer, x, state, d_out)
    rtrl, outs = rtrl_run(layer, x, state, d_out)
    assert rtrl.steps == T and rtrl.batch_size == B
    np.testing.assert_allclose(outs, out, rtol=1e-13, atol=1e-15)
    for carried, final in zip(parts(rtrl.state), parts(state_n), strict=True):
        assert carried.shape == final.shape
        np.testing.assert_allclose(carried, final, rtol=1e-13, atol=1e-15)
    assert_grads_equal(layer.grads, expected, rtol=1e-10)


def test_rtrl_in_float32_agrees_with_bptt_in_float32(rng):
    layer = LAYERS["lstm"](np.float32)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    d_out = rng.standard_normal((B, T, H)).astype(np.float32)
    _, _, expected = bptt_grads(layer, x, None, d_out)
    _, outs = rtrl_run(layer, x, None, d_out)
    assert outs.dtype == np.float32
    assert_grads_equal(layer.grads, expected, rtol=1e-4)


def test_a_stream_carried_on_with_fresh_sensitivities_is_bptt_of_the_later_part(rng):
    """``reset(B, rtrl.state)`` keeps the state and forgets the sensitivities: BPTT from there on."""
    layer = LAYERS["lstm"]()
    x = rng.standard_normal((B, T, D))
    d_out = rng.standard_normal((B, T, H))
    rtrl = RTRL(layer)
    rtrl.reset(B)
    for t in range(3):
        rtrl.step(x[:, t])
        rtrl.accumulate(d_out[:, t])
    middle = rtrl.state
    rtrl.reset(B, middle)
    layer.zero_grad()
    for t in range(3, T):
        rtrl.step(x[:, t])
        rtrl.accumulate(d_out[:, t])
    got = {name: value.copy() for name, value in layer.grads.items()}
    _, _, expected = bptt_grads(layer, x[:, 3:], middle, d_out[:, 3:])
    assert_grads_equal(got, expected, rtol=1e-10)


def test_sensitivities_restored_after_a_reset_go_on_as_if_never_stopped(rng):
    """A checkpoint's view: store the state and M(t), reset, restore both, carry on: BPTT over all."""
    layer = LAYERS["lstm-peepholes"]()
    x, d_out = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H))
    _, _, expected = bptt_grads(layer, x, None, d_out)
    layer.zero_grad()
    rtrl = RTRL(layer)
    rtrl.reset(B)
    for t in range(T):
        if t == 4:
            state, stored = rtrl.state, rtrl.sensitivities.copy()
            P = sum(value.size for value in layer.params.values())
            assert stored.shape == (B, 2 * H, P) and stored[:, :H].any() and stored[:, H:].any()  # h and c rows
            rtrl = RTRL(layer)
            rtrl.reset(B, state)
            rtrl.sensitivities = stored
        rtrl.step(x[:, t])
        rtrl.accumulate(d_out[:, t])
    assert_grads_equal(layer.grads, expected, rtol=1e-10)


def test_accumulate_adds_into_the_layers_gradients(rng):
    layer = LAYERS["gru"]()
    x, d_h = rng.standard_normal((B, D)), rng.standard_normal((B, H))
    rtrl = RTRL(layer)
    rtrl.reset(B)
    rtrl.accumulate(d_h)  # h(0) does not depend on the parameters
    assert not any(value.any() for value in layer.grads.values())
    rtrl.step(x)
    rtrl.accumulate(d_h)
    once = {name: value.copy() for name, value in layer.grads.items()}
    rtrl.accumulate(d_h)
    for name, value in once.items():
        np.testing.assert_allclose(layer.grads[name], 2 * value, rtol=1e-15)


@pytest.mark.parametrize("cell", [ElmanCell(H), LSTMCell(H, peepholes=True), LSTMCell(H, peepholes=True, proj_size=P),
                                  GRUCell(H), GRUCell(H, reset_after=False)],
                         ids=["elman", "lstm-peepholes", "lstm-proj-peepholes", "gru", "gru-reset-before"])
def test_recurrent_row_grads_sum_to_recurrent_grads(cell, rng):
    """The built-in cells' per-row terms, summed over the rows, are one step's recurrent_grads."""
    p = {name: rng.standard_normal(shape) for name, shape in cell.param_shapes().items()}
    state = tuple(rng.standard_normal((B, width)) for width in cell.state_widths)
    xw = rng.standard_normal((B, cell.num_gates * H))
    cotangents = rng.standard_normal((1, B, sum(cell.state_widths)))
    vjp = step_vjps(cell, p, xw, state, cotangents)
    rows = cell.recurrent_row_grads(p, vjp.state[0], vjp.d_rec, vjp.cache)
    g = {name: np.zeros_like(value) for name, value in p.items()}
    cell.recurrent_grads(p, g, vjp.state[0][None], vjp.d_rec[None], [vjp.cache])
    assert rows.keys() == g.keys()
    for name, value in g.items():
        assert rows[name].shape == (B,) + value.shape
        np.testing.assert_allclose(rows[name].sum(axis=0), value, rtol=1e-13, atol=1e-15)


def test_a_custom_cells_row_method_is_used_where_it_matches_its_recurrent_grads(rng):
    IndRNNRowsCell.row_calls = 0
    rtrl = RTRL(LAYERS["custom-indrnn-rows"]())
    rtrl.reset(B)
    rtrl.step(rng.standard_normal((B, D)))
    assert IndRNNRowsCell.row_calls == 1


def test_inputs_are_never_modified(rng):
    layer = LAYERS["lstm"]()
    state = random_state(layer, rng)
    x_t, d_h = rng.standard_normal((B, D)), rng.standard_normal((B, H))
    copies = [a.copy() for a in (*state, x_t, d_h)]
    rtrl = RTRL(layer)
    rtrl.reset(B, state)
    h = rtrl.step(x_t)
    rtrl.accumulate(d_h)
    h += 1.0  # the returned h and state are the caller's to change
    rtrl.state[0][...] = 0.0
    for before, after in zip(copies, (*state, x_t, d_h)):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_allclose(rtrl.state[0][0], h - 1.0)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("layer, error, message", [
    (Linear(D, H), TypeError, "RTRL: expected a numpy_rnn.layers.Recurrent layer (SimpleRNN, LSTM, GRU or "
                              "Recurrent(cell=...)), got Linear"),
    (LSTM(D, H, num_layers=2), ValueError, "RTRL: expected a layer with num_layers=1 and bidirectional=False, "
                                           "got num_layers=2, bidirectional=False"),
    (GRU(D, H, bidirectional=True), ValueError, "RTRL: expected a layer with num_layers=1 and "
                                                "bidirectional=False, got num_layers=1, bidirectional=True"),
    (LSTM(D, H, zoneout=(0.1, 0.0), recurrent_dropout=0.2), ValueError,
     "RTRL: expected a layer without go_backwards, input or recurrent dropout and zoneout (RTRL runs the cell's own "
     "steps forward in time), got recurrent_dropout=0.2, zoneout=(0.1, 0.0)"),
])
def test_rtrl_refuses_layers_it_cannot_run(layer, error, message):
    with pytest.raises(error, match=re.escape(message)):
        RTRL(layer)


@pytest.mark.parametrize("call, use", [
    ("step", lambda rtrl: rtrl.step(np.zeros((B, D)))),
    ("accumulate", lambda rtrl: rtrl.accumulate(np.zeros((B, H)))),
    ("state", lambda rtrl: rtrl.state),
    ("sensitivities", lambda rtrl: rtrl.sensitivities),
])
def test_calls_before_reset_are_refused(call, use):
    with pytest.raises(RuntimeError, match=re.escape(f"RTRL: {call} before reset(); call reset(batch_size) first")):
        use(RTRL(SimpleRNN(D, H, rng=0)))


def test_wrong_shapes_and_dtypes_name_the_argument():
    rtrl = RTRL(LSTM(D, H, rng=0))
    rtrl.reset(B)
    with pytest.raises(ValueError, match=re.escape("RTRL: expected x_t of shape (2, 3), got (2, 4)")):
        rtrl.step(np.zeros((B, D + 1)))
    with pytest.raises(ValueError, match=re.escape("RTRL: expected x_t of shape (2, 3), got (3,)")):
        rtrl.step(np.zeros(D))
    with pytest.raises(ValueError, match=re.escape("RTRL: expected d_h_t of shape (2, 5), got (2, 10)")):
        rtrl.accumulate(np.zeros((B, 2 * H)))  # (h, c) concatenated: only h gets a loss gradient
    with pytest.raises(TypeError, match=re.escape("RTRL: expected x_t of dtype float64 (the weights' dtype), got float32")):
        rtrl.step(np.zeros((B, D), np.float32))
    with pytest.raises(ValueError, match=re.escape("RTRL: expected batch_size >= 1, got 0")):
        rtrl.reset(0)
    with pytest.raises(ValueError, match=re.escape("RTRL: expected state[1] (c) of shape (1, 2, 5), got (2, 5)")):
        rtrl.reset(B, (np.zeros((1, B, H)), np.zeros((B, H))))
    with pytest.raises(TypeError, match=re.escape("RTRL: expected state to be a tuple (h, c) of arrays of shapes "
                                                  "(1, 2, 5), (1, 2, 5), got ndarray")):
        rtrl.reset(B, np.zeros((1, B, H)))
    size = sum(value.size for value in rtrl.layer.params.values())
    with pytest.raises(ValueError, match=re.escape(f"RTRL: expected sensitivities of shape (2, 10, {size}), "
                                                   f"got (2, 5, {size})")):
        rtrl.sensitivities = np.zeros((B, H, size))
    projected = RTRL(LSTM(D, H, proj_size=P, rng=0))  # h of width P = 4, c of width H = 5
    with pytest.raises(ValueError, match=re.escape("RTRL: expected state[0] (h) of shape (1, 2, 4), got (1, 2, 5)")):
        projected.reset(B, (np.zeros((1, B, H)), np.zeros((1, B, H))))
    projected.reset(B)
    with pytest.raises(ValueError, match=re.escape("RTRL: expected d_h_t of shape (2, 4), got (2, 5)")):
        projected.accumulate(np.zeros((B, H)))
    gru = RTRL(GRU(D, H, rng=0))
    with pytest.raises(ValueError, match=re.escape("RTRL: expected state of shape (1, 3, 5), got (1, 2, 5)")):
        gru.reset(3, np.zeros((1, B, H)))
