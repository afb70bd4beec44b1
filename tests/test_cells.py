"""One step of each cell against central differences, outside any layer; the Cell contract.

The loss is ``sum_i sum(state_i * G_i)`` over the new state; the analytic gradients come from
``step_backward`` (input, previous state) and ``recurrent_grads`` over a single step (the
cell's own parameters). The numerical side calls ``step`` with one perturbed array carrying a
leading batch axis, which also checks the broadcasting contract the vectorised check relies on.
"""
import re

import numpy as np
import pytest

from numpy_rnn.cells import (
    Cell,
    ElmanCache,
    ElmanCell,
    GRUCache,
    GRUCell,
    LSTMCache,
    LSTMCell,
    sigmoid,
    step_vjps,
    written_with,
)
from numpy_rnn.gradcheck import compare, estimate_gradients

B, H, P = 3, 4, 2  # P: the width of h of an LSTM with projections

CELLS = {
    "elman-tanh": lambda: ElmanCell(H, "tanh"),
    "elman-relu": lambda: ElmanCell(H, "relu"),
    "lstm": lambda: LSTMCell(H),
    "lstm-peepholes": lambda: LSTMCell(H, peepholes=True),
    "lstm-proj": lambda: LSTMCell(H, proj_size=P),
    "lstm-proj-peepholes": lambda: LSTMCell(H, peepholes=True, proj_size=P),
    "gru": lambda: GRUCell(H),
    "gru-reset-before": lambda: GRUCell(H, reset_after=False),
}


def random_state(cell, rng):
    """One ``(B, width)`` array per state part."""
    return tuple(rng.standard_normal((B, width)) for width in cell.state_widths)


@pytest.mark.parametrize("kind", CELLS)
def test_one_step_backward_matches_central_differences(kind, rng):
    cell = CELLS[kind]()
    params = {name: 0.5 * rng.standard_normal(shape) for name, shape in cell.param_shapes().items()}
    xw = rng.standard_normal((B, cell.num_gates * H))
    state, weights = random_state(cell, rng), random_state(cell, rng)

    grads = {name: np.zeros_like(value) for name, value in params.items()}
    _, cache = cell.step(params, xw, state)
    d_xw, d_rec, d_prev = cell.step_backward(params, grads, tuple(weights), cache)
    cell.recurrent_grads(params, grads, state[0][None], None if d_rec is None else d_rec[None], [cache])
    analytic = {**grads, "xw": d_xw, **{f"state{i}": d for i, d in enumerate(d_prev)}}

    arrays = {**params, "xw": xw, **{f"state{i}": s for i, s in enumerate(state)}}

    def loss(a):
        p = {name: a[name] for name in params}
        new, _ = cell.step(p, a["xw"], tuple(a[f"state{i}"] for i in range(len(state))))
        return sum(np.sum(s * w, axis=(-2, -1)) for s, w in zip(new, weights))

    report = compare(analytic, estimate_gradients(loss, arrays, smooth=cell.smooth))
    assert report.passed, str(report)


def test_sigmoid_is_stable_and_keeps_the_dtype():
    x = np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0], dtype=np.float32)
    with np.errstate(all="raise"):
        y = sigmoid(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1.0)), 1.0], atol=1e-7)


def test_lstm_step_is_torch_gate_order(rng):
    """i, f, g, o blocks: with only the forget gate open and c(t-1) = 1, c(t) = sigmoid(z_f)."""
    cell = LSTMCell(H)
    p = {"R": np.zeros((H, 4 * H))}
    xw = np.full((1, 4 * H), -50.0)
    xw[0, H:2 * H] = 0.3  # forget gate pre-activation
    (_, c), _ = cell.step(p, xw, (np.zeros((1, H)), np.ones((1, H))))
    np.testing.assert_allclose(c, sigmoid(np.full((1, H), 0.3)), atol=1e-12)


def test_gru_reset_after_uses_b_hn_inside_the_reset(rng):
    """n = tanh(xw_n + r * (h R_n + b_hn)): with r = 0 the candidate ignores b_hn."""
    cell = GRUCell(H)
    p = {"R": np.zeros((H, 3 * H)), "b_hn": np.full(H, 5.0)}
    xw = np.zeros((1, 3 * H))
    xw[0, :H] = -50.0  # r ~ 0
    _, cache = cell.step(p, xw, (np.zeros((1, H)),))
    np.testing.assert_allclose(cache.n, 0.0, atol=1e-12)  # n = tanh(0)


def test_state_names_and_parameter_shapes():
    assert LSTMCell(H).state_names == ("h", "c") and LSTMCell(H).state_size == 2
    assert set(LSTMCell(H, peepholes=True).param_shapes()) == {"R", "p_i", "p_f", "p_o"}
    assert GRUCell(H).param_shapes() == {"R": (H, 3 * H), "b_hn": (H,)}
    assert GRUCell(H, reset_after=False).param_shapes() == {"R": (H, 3 * H)}
    assert not ElmanCell(H, "relu").smooth and ElmanCell(H).smooth
    assert LSTMCell(H).state_widths == (H, H) and GRUCell(H).state_widths == (H,)
    projected = LSTMCell(H, peepholes=True, proj_size=P)
    assert projected.state_widths == (P, H)
    assert projected.param_shapes() == {"R": (P, 4 * H), "p_i": (H,), "p_f": (H,), "p_o": (H,), "W_hr": (H, P)}


def test_caches_are_named_per_step_records(rng):
    h_prev, c_prev = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    lstm = LSTMCell(H)
    (h, c), cache = lstm.step({"R": rng.standard_normal((H, 4 * H))}, rng.standard_normal((B, 4 * H)), (h_prev, c_prev))
    assert isinstance(cache, LSTMCache) and cache.c_prev is c_prev and cache.c is c
    np.testing.assert_array_equal(h, cache.o * cache.tanh_c)
    assert cache.m is h  # without projections m = o tanh(c) is h itself
    W_hr = rng.standard_normal((H, P))
    (h, c), cache = LSTMCell(H, proj_size=P).step({"R": rng.standard_normal((P, 4 * H)), "W_hr": W_hr},
                                                  rng.standard_normal((B, 4 * H)), (h_prev[:, :P], c_prev))
    assert h.shape == (B, P) and c.shape == (B, H)
    np.testing.assert_array_equal(h, (cache.o * cache.tanh_c) @ W_hr)  # h = m W_hr
    gru = GRUCell(H, reset_after=False)
    _, cache = gru.step({"R": rng.standard_normal((H, 3 * H))}, rng.standard_normal((B, 3 * H)), (h_prev,))
    assert isinstance(cache, GRUCache) and cache.h_prev is h_prev
    np.testing.assert_array_equal(cache.rec_n, cache.r * h_prev)  # what R_n multiplies
    (h,), cache = ElmanCell(H).step({"R": rng.standard_normal((H, H))}, rng.standard_normal((B, H)), (h_prev,))
    assert isinstance(cache, ElmanCache) and cache.h is h


def _cell_class(**attributes):
    def step(self, p, xw, state):
        return state, None

    def step_backward(self, p, g, d_state, cache):
        return None, None, d_state
    return type("MyCell", (Cell,), {"step": step, "step_backward": step_backward, **attributes})


def test_a_cell_declares_its_state_by_names_not_by_size():
    assert _cell_class(state_names=("h", "c", "m"))(H).state_size == 3
    with pytest.raises(TypeError, match=r"MyCell: state_size is derived from state_names; set state_names"):
        _cell_class(state_size=2)


@pytest.mark.parametrize("names", [(), ["h", "c"], ("h", "h"), ("h", 1), "h"])
def test_state_names_must_be_a_tuple_of_distinct_strings(names):
    expected = f"MyCell: expected state_names to be a non-empty tuple of distinct strings, got {names!r}"
    with pytest.raises(TypeError, match=re.escape(expected)):
        _cell_class(state_names=names)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_step_vjps_with_identity_cotangents_is_the_state_jacobian(kind, rng):
    """Row i of d state(t) / d state(t-1), from the cell's backward, against central differences."""
    cell = CELLS[kind]()
    SH, splits = sum(cell.state_widths), np.cumsum(cell.state_widths)[:-1]  # the parts concatenated
    params = {name: 0.5 * rng.standard_normal(shape) for name, shape in cell.param_shapes().items()}
    xw = rng.standard_normal((B, cell.num_gates * H))
    state = random_state(cell, rng)
    eye = np.broadcast_to(np.eye(SH)[:, None, :], (SH, B, SH))
    vjp = step_vjps(cell, params, xw, state, eye)
    assert vjp.d_state.shape == (SH, B, SH) and vjp.d_xw.shape == (SH, B, cell.num_gates * H)

    def new_state(flat):
        return np.concatenate(cell.step(params, xw, tuple(np.split(flat, splits, axis=-1)))[0], axis=-1)

    flat, eps = np.concatenate(state, axis=-1), 1e-6
    numeric = np.stack([(new_state(flat + eps * e) - new_state(flat - eps * e)) / (2 * eps)
                        for e in np.eye(SH)], axis=-1)  # (B, S*H out, S*H in)
    np.testing.assert_allclose(vjp.d_state.transpose(1, 0, 2), numeric, atol=1e-8)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_activations_name_the_squashed_values_of_a_step(kind, rng):
    cell = CELLS[kind]()
    params = {name: rng.standard_normal(shape) for name, shape in cell.param_shapes().items()}
    _, cache = cell.step(params, rng.standard_normal((B, cell.num_gates * H)), random_state(cell, rng))
    found = cell.activations(cache)
    assert found
    for kind_name, values in found.values():
        assert values.shape == (B, H)
        low = 0.0 if kind_name in ("sigmoid", "relu") else -1.0
        assert kind_name in ("tanh", "sigmoid", "relu") and np.all(values >= low)
        if kind_name != "relu":
            assert np.all(values <= 1.0)


def test_a_fast_path_is_trusted_only_where_it_was_written_for_the_steps():
    class Tweaked(ElmanCell):  # overrides a step method only: the parent's fast path no longer applies
        def step_backward(self, p, g, d_state, cache):
            return super().step_backward(p, g, d_state, cache)

    class Faster(Tweaked):  # writes its own: trusted again
        def forward_sequence(self, p, xw, state0):
            return super().forward_sequence(p, xw, state0)

    basis = ("step", "step_backward", "recurrent_grads")
    assert written_with(ElmanCell(H), "forward_sequence", *basis)
    assert not written_with(Tweaked(H), "forward_sequence", *basis)
    assert written_with(Faster(H), "forward_sequence", *basis)

    class Own(Cell):  # a custom cell: Cell's default forward_sequence was not written for its steps
        def step(self, p, xw, state):
            return ElmanCell.step(self, p, xw, state)

        def step_backward(self, p, g, d_state, cache):
            return ElmanCell.step_backward(self, p, g, d_state, cache)

    assert not written_with(Own(H), "forward_sequence", *basis)


@pytest.mark.parametrize("kind", CELLS)
def test_fast_path_caches_are_the_step_caches(kind, rng):
    """forward_sequence: every step's cache is the cell's cache named tuple holding, field by
    field, what step() holds (diagnostics and RTRL read them), and the same states;
    backward_sequence leaves the caches and the incoming gradients as they were."""
    cell, T = CELLS[kind](), 5
    p = {name: rng.standard_normal(shape) for name, shape in cell.param_shapes().items()}
    xw = rng.standard_normal((T, B, cell.num_gates * H))
    state = random_state(cell, rng)
    hs, state_n, caches = cell.forward_sequence(p, xw, state)
    assert len(caches) == T
    for t in range(T):
        state, want = cell.step(p, xw[t], state)
        got = caches[t]
        assert type(got) is type(want)
        for field in type(want)._fields:
            np.testing.assert_allclose(getattr(got, field), getattr(want, field), rtol=1e-13, atol=1e-15,
                                       err_msg=field)
        np.testing.assert_allclose(hs[t + 1], state[0], rtol=1e-13, atol=1e-15)
    for got, want in zip(state_n, state):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    d_out = rng.standard_normal((T, B, cell.state_widths[0]))
    d_state_n = random_state(cell, rng)
    inputs = (d_out, *d_state_n, hs, *caches.stacked)
    before = [a.copy() for a in inputs]
    cell.backward_sequence(p, {name: np.zeros_like(v) for name, v in p.items()}, d_out, d_state_n, hs, caches, None)
    for got, want in zip(inputs, before):
        np.testing.assert_array_equal(got, want)


def test_a_cell_writing_forward_sequence_alone_gets_the_step_by_step_backward(rng):
    """Cell.backward_sequence's default is BPTT through step_backward over the fast forward's caches."""
    class ForwardOnly(ElmanCell):
        def forward_sequence(self, p, xw, state0):
            return super().forward_sequence(p, xw, state0)

    T = 6
    fast, alone = ElmanCell(H), ForwardOnly(H)
    p = {"R": rng.standard_normal((H, H))}
    xw, h0 = rng.standard_normal((T, B, H)), (rng.standard_normal((B, H)),)
    d_out, d_h = rng.standard_normal((T, B, H)), (rng.standard_normal((B, H)),)
    results = []
    for cell, backward in ((fast, ElmanCell.backward_sequence), (alone, Cell.backward_sequence)):
        hs, _, caches = cell.forward_sequence(p, xw, h0)
        g, tape = {"R": np.zeros((H, H))}, [None] * T
        results.append((*backward(cell, p, g, d_out, d_h, hs, caches, tape), g["R"], tape))
    (dxw_a, dh0_a, dR_a, tape_a), (dxw_b, dh0_b, dR_b, tape_b) = results
    np.testing.assert_allclose(dxw_b, dxw_a, rtol=1e-13)
    np.testing.assert_allclose(dh0_b[0], dh0_a[0], rtol=1e-13)
    np.testing.assert_allclose(dR_b, dR_a, rtol=1e-13)
    for got, want in zip(tape_b, tape_a):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
