"""Recurrent layers: exact gradients on the whole option grid, semantics, and bad input."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpy_rnn import GRU, LSTM, Linear, Recurrent, SimpleRNN
from numpy_rnn.cells import ElmanCell, StepCaches
from numpy_rnn.gradcheck import check_layer

B, T, D, H = 3, 7, 4, 5  # all different on purpose
P = 3  # proj_size of an LSTM with projections: the width of its h, unlike T, D and H
MIXED = np.array([7, 2, 5])  # unsorted lengths

LAYERS = {
    "rnn-tanh": (SimpleRNN, {}),
    "rnn-relu": (SimpleRNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, {}),
    "lstm-peepholes": (LSTM, {"peepholes": True}),
    "lstm-proj": (LSTM, {"proj_size": P}),
    "lstm-proj-peepholes": (LSTM, {"proj_size": P, "peepholes": True}),
    "gru": (GRU, {}),
    "gru-reset-before": (GRU, {"reset_after": False}),
}


def make(kind, num_layers=1, bidirectional=False, **extra):
    cls, options = LAYERS[kind]
    return cls(D, H, num_layers, bidirectional=bidirectional, rng=7, **options, **extra)


def random_state(layer, rng, batch=B):
    """One (L*dirs, batch, width) array per state part: a tuple for LSTM, else the array."""
    parts = tuple(rng.standard_normal((layer.num_layers * layer.num_directions, batch, width))
                  for width in layer.cell.state_widths)
    return parts if len(parts) > 1 else parts[0]


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [None, MIXED], ids=["equal", "mixed"])
def test_gradients_match_central_differences(kind, num_layers, bidirectional, lengths, rng):
    layer = make(kind, num_layers, bidirectional)
    x = rng.standard_normal((B, T, D))
    report = check_layer(layer, x, random_state(layer, rng), lengths)
    assert report.passed, str(report)
    # a projection narrows h: some gradient entries are ~1e-5, where rounding alone is 1e-7 relative
    assert report.max_rel_error <= (1e-6 if "proj" in kind else 1e-7), str(report)
    assert set(report.arrays) >= set(layer.params) | {"x", "state[0]"}


@pytest.mark.parametrize("kind", LAYERS)
def test_layers_without_biases_have_exact_gradients(kind, rng):
    layer = make(kind, 2, True, bias=False)
    assert not any(name.endswith(("b", "b_hn")) for name in layer.params)
    report = check_layer(layer, rng.standard_normal((B, T, D)), random_state(layer, rng), MIXED)
    assert report.passed, str(report)


def test_without_biases_a_zero_input_from_a_zero_state_stays_zero(rng):
    for kind in LAYERS:
        out, _ = make(kind, bias=False).forward(np.zeros((B, T, D)))
        np.testing.assert_array_equal(out, 0.0)  # no bias to move it (every cell maps 0 to 0)


@pytest.mark.parametrize("kind", LAYERS)
def test_dropout_gradients_exact_for_the_drawn_mask(kind, rng):
    layer = make(kind, 2, True, dropout=0.4)
    report = check_layer(layer, rng.standard_normal((B, T, D)), None, MIXED)
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru"])
@pytest.mark.parametrize("shape", [(1, 1, D), (1, 6, D), (4, 1, D)], ids=["B1T1", "B1", "T1"])
def test_gradients_at_edge_sizes(kind, shape, rng):
    report = check_layer(make(kind), rng.standard_normal(shape))
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru-reset-before"])
def test_directional_check_agrees(kind, rng):
    layer = make(kind, 2, True)
    report = check_layer(layer, rng.standard_normal((B, T, D)), None, MIXED, mode="directional")
    assert report.passed, str(report)


class _WrongElman(ElmanCell):
    """Forgets the tanh derivative: the kind of bug a gradient check exists for."""

    def step_backward(self, p, g, d_state, h):
        (dh,) = d_state
        return dh, dh, (dh @ p["R"].T,)


def test_planted_wrong_backward_is_caught(rng):
    layer = Recurrent(D, H, cell=_WrongElman, rng=1)
    report = check_layer(layer, rng.standard_normal((B, T, D)))
    assert not report.passed
    assert not report.arrays["R"].passed


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru"])
def test_lengths_give_each_sequence_its_own_run(kind, rng):
    """A padded sequence gives exactly what the same sequence alone gives; padding is zero."""
    layer = make(kind, 2, True)
    x = rng.standard_normal((B, T, D))
    out, state = layer.forward(x, lengths=MIXED)
    h_n = state[0] if isinstance(state, tuple) else state
    for b, n in enumerate(MIXED):
        alone, alone_state = layer.forward(x[b:b + 1, :n])
        alone_h = alone_state[0] if isinstance(alone_state, tuple) else alone_state
        np.testing.assert_allclose(out[b, :n], alone[0], atol=1e-14)
        np.testing.assert_allclose(h_n[:, b], alone_h[:, 0], atol=1e-14)
        assert np.all(out[b, n:] == 0)


def test_lengths_ignore_upstream_gradient_past_the_end(rng):
    layer = make("lstm", 1, True)
    x = rng.standard_normal((B, T, D))
    out, _ = layer.forward(x, lengths=MIXED)
    d_out = rng.standard_normal(out.shape)
    dx1, _ = layer.backward(d_out)
    for b, n in enumerate(MIXED):
        d_out[b, n:] = 1e6
    layer.zero_grad()
    dx2, _ = layer.backward(d_out)
    np.testing.assert_array_equal(dx1, dx2)
    assert np.all(dx1[1, 2:] == 0)


def test_unbatched_input_matches_batch_of_one(rng):
    layer = make("lstm", 2, True)
    x = rng.standard_normal((T, D))
    state = random_state(layer, rng, batch=1)
    out_b, (h_b, c_b) = layer.forward(x[None], state)
    out, (h, c) = layer.forward(x, (state[0][:, 0], state[1][:, 0]))
    assert out.shape == (T, 2 * H) and h.shape == (4, H)
    np.testing.assert_array_equal(out, out_b[0])
    np.testing.assert_array_equal(c, c_b[:, 0])
    d_out = rng.standard_normal(out.shape)
    dx, (dh0, dc0) = layer.backward(d_out, (None, np.ones((4, H))))
    assert dx.shape == (T, D) and dh0.shape == (4, H) and dc0.shape == (4, H)


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru"])
def test_float32_runs_in_float32_and_agrees_with_float64(kind, rng):
    cls, options = LAYERS[kind]
    l64 = cls(D, H, 2, bidirectional=True, rng=3, **options)
    l32 = cls(D, H, 2, bidirectional=True, rng=3, dtype=np.float32, **options)
    x = rng.standard_normal((B, T, D))
    out64, _ = l64.forward(x, lengths=MIXED)
    out32, _ = l32.forward(x.astype(np.float32), lengths=MIXED)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, atol=1e-5)
    dx32, _ = l32.backward(np.ones_like(out32))
    dx64, _ = l64.backward(np.ones_like(out64))
    assert dx32.dtype == np.float32 and all(g.dtype == np.float32 for g in l32.grads.values())
    np.testing.assert_allclose(dx32, dx64, atol=1e-4)


def test_backward_accumulates_and_zero_grad_clears(rng):
    layer = make("gru")
    x = rng.standard_normal((B, T, D))
    out, _ = layer.forward(x)
    layer.backward(np.ones_like(out))
    once = {k: v.copy() for k, v in layer.grads.items()}
    layer.backward(np.ones_like(out))
    for key in once:
        np.testing.assert_allclose(layer.grads[key], 2 * once[key])
    layer.zero_grad()
    assert all(np.all(v == 0) for v in layer.grads.values())


def test_inputs_are_never_modified(rng):
    layer = make("lstm", 2, True, dropout=0.3)
    x = rng.standard_normal((B, T, D))
    state = random_state(layer, rng)
    lengths = MIXED.copy()
    copies = [x.copy(), state[0].copy(), state[1].copy()]
    out, _ = layer.forward(x, state, lengths)
    d_out = rng.standard_normal(out.shape)
    d_state = (rng.standard_normal(state[0].shape), rng.standard_normal(state[0].shape))
    upstream = [d_out.copy(), d_state[0].copy(), d_state[1].copy()]
    layer.backward(d_out, d_state)
    for before, after in zip(copies + upstream, [x, *state, d_out, *d_state]):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(lengths, MIXED)


def test_parameter_names_for_stacks_and_directions():
    assert set(make("gru").params) == {"W", "R", "b", "b_hn"}
    names = set(make("rnn-tanh", 2, True).params)
    assert names == {f"{p}.{n}" for p in ("l0", "l0_reverse", "l1", "l1_reverse") for n in "WRb"}
    assert make("rnn-tanh", 2, True).params["l1.W"].shape == (2 * H, H)
    assert set(make("lstm-peepholes").params) == {"W", "R", "b", "p_i", "p_f", "p_o"}


def test_forget_bias_and_init_by_name():
    layer = LSTM(D, H, forget_bias=1.0, init={"R": "orthogonal", "W": "glorot_uniform"}, rng=0)
    np.testing.assert_array_equal(layer.params["b"][H:2 * H], 1.0)
    R = layer.params["R"]
    for k in range(4):
        block = R[:, k * H:(k + 1) * H]
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-12)


def test_dropout_only_while_training(rng):
    layer = make("gru", 2, dropout=0.5)
    x = rng.standard_normal((B, T, D))
    train_a, _ = layer.forward(x)
    train_b, _ = layer.forward(x)
    assert not np.allclose(train_a, train_b)
    layer.eval()
    eval_a, _ = layer.forward(x)
    eval_b, _ = layer.forward(x)
    np.testing.assert_array_equal(eval_a, eval_b)


def test_same_seed_same_weights():
    a, b = make("lstm", 2, True), make("lstm", 2, True)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["rnn-tanh", "lstm", "gru"]), batch=st.integers(1, 3), steps=st.integers(1, 5),
       inp=st.integers(1, 4), hidden=st.integers(1, 4), layers=st.integers(1, 2), bidir=st.booleans(),
       seed=st.integers(0, 2**16), data=st.data())
def test_property_gradients_over_random_sizes(kind, batch, steps, inp, hidden, layers, bidir, seed, data):
    cls, options = LAYERS[kind]
    layer = cls(inp, hidden, layers, bidirectional=bidir, rng=seed, **options)
    lengths = np.array(data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch)))
    x = np.random.default_rng(seed).standard_normal((batch, steps, inp))
    out, _ = layer.forward(x, lengths=lengths)
    assert out.shape == (batch, steps, (1 + bidir) * hidden)
    report = check_layer(layer, x, None, lengths, rng=seed)
    assert report.passed, str(report)


# ---------------------------------------------------------------- bad input
def test_wrong_number_of_dimensions_or_features():
    layer = SimpleRNN(8, H)
    with pytest.raises(ValueError, match=r"SimpleRNN: expected x of shape \(B, T, 8\) or \(T, 8\), got \(4, 7\)"):
        layer.forward(np.zeros((4, 7)))
    with pytest.raises(ValueError, match=r"got \(2, 3, 4, 8\)"):
        layer.forward(np.zeros((2, 3, 4, 8)))


def test_zero_time_steps():
    with pytest.raises(ValueError, match=r"at least one time step.*\(2, 0, 4\)"):
        make("gru").forward(np.zeros((2, 0, D)))


@pytest.mark.parametrize("bad", [np.zeros((B, T, D), dtype=int), np.zeros((B, T, D), dtype=bool),
                                 np.zeros((B, T, D), dtype=complex), np.zeros((B, T, D), dtype=object)],
                         ids=["int", "bool", "complex", "object"])
def test_non_float_input_is_a_type_error(bad):
    with pytest.raises(TypeError, match=r"SimpleRNN: expected x of a floating dtype \(float64\), got dtype"):
        make("rnn-tanh").forward(bad)


def test_dtype_different_from_weights():
    with pytest.raises(TypeError, match=r"expected x of dtype float64 \(the weights' dtype\), got float32"):
        make("lstm").forward(np.zeros((B, T, D), dtype=np.float32))


def test_state_that_numpy_would_broadcast_is_refused():
    layer = make("rnn-tanh")
    with pytest.raises(ValueError, match=r"expected state of shape \(1, 3, 5\), got \(1, 1, 5\)"):
        layer.forward(np.zeros((B, T, D)), np.zeros((1, 1, H)))


def test_lstm_state_must_be_a_pair_with_equal_shapes():
    layer = make("lstm")
    with pytest.raises(TypeError, match=r"LSTM: expected state to be a tuple \(h, c\)"):
        layer.forward(np.zeros((B, T, D)), np.zeros((1, B, H)))
    with pytest.raises(ValueError, match=r"state\[1\] \(c\) of shape \(1, 3, 5\), got \(1, 3, 4\)"):
        layer.forward(np.zeros((B, T, D)), (np.zeros((1, B, H)), np.zeros((1, B, 4))))


@pytest.mark.parametrize("lengths, error, message", [
    (np.array([1, 2]), ValueError, r"expected lengths of shape \(3,\), got \(2,\)"),
    (np.array([1.0, 2.0, 3.0]), TypeError, r"expected lengths of an integer dtype, got dtype float64"),
    (np.array([0, 2, 3]), ValueError, r"expected every length in \[1, 7\] \(T = 7\), got min 0"),
    (np.array([8, 2, 3]), ValueError, r"got min 2 and max 8"),
])
def test_bad_lengths(lengths, error, message):
    with pytest.raises(error, match=message):
        make("gru").forward(np.zeros((B, T, D)), lengths=lengths)


@pytest.mark.parametrize("value, error, message", [
    (0, ValueError, r"SimpleRNN: expected hidden_size >= 1, got 0"),
    (-3, ValueError, r"expected hidden_size >= 1, got -3"),
    (True, TypeError, r"expected hidden_size to be an int >= 1, got bool True"),
    (2.0, TypeError, r"expected hidden_size to be an int >= 1, got float 2.0"),
])
def test_bad_sizes(value, error, message):
    with pytest.raises(error, match=message):
        SimpleRNN(D, value)


def test_bad_options():
    with pytest.raises(ValueError, match=r"unknown nonlinearity 'sigmoid'; valid names: tanh, relu"):
        SimpleRNN(D, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"expected dropout finite and in \[0.0, 1.0\), got 1.0"):
        GRU(D, H, 2, dropout=1.0)
    with pytest.raises(ValueError, match=r"expected dropout finite and in \[0.0, 1.0\), got -0.1"):
        GRU(D, H, 2, dropout=-0.1)
    with pytest.raises(ValueError, match=r"unknown initialiser 'he'; valid names: .*orthogonal"):
        LSTM(D, H, init={"R": "he"})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) in init \['V'\]; valid names: R, W, b"):
        SimpleRNN(D, H, init={"V": "zeros"})
    with pytest.raises(TypeError, match=r"expected dtype float32 or float64, got int64"):
        LSTM(D, H, dtype=np.int64)
    with pytest.raises(TypeError, match=r"expected bidirectional to be a bool"):
        LSTM(D, H, bidirectional=1)
    with pytest.raises(TypeError, match=r"GRU: expected bias to be a bool, got 0"):
        GRU(D, H, bias=0)
    with pytest.raises(ValueError, match=r"LSTM: forget_bias=1.0 sets a block of b, and bias=False leaves the layer "
                                         r"without b"):
        LSTM(D, H, forget_bias=1.0, bias=False)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) in init \['b'\]; valid names: R, W$"):
        SimpleRNN(D, H, bias=False, init={"b": "zeros"})


def test_nan_input_propagates_unless_checked():
    layer = make("rnn-tanh")
    x = np.zeros((B, T, D))
    x[0, 3, 1] = np.nan
    out, _ = layer.forward(x)
    assert np.isnan(out[0, 3:]).all() and np.isfinite(out[1:]).all()
    with pytest.raises(ValueError, match=r"expected finite values in x, got NaN or inf"):
        layer.forward(x, check_finite=True)


def test_backward_before_forward_and_wrong_upstream_shapes():
    layer = make("lstm")
    with pytest.raises(RuntimeError, match=r"LSTM: backward\(\) called before forward\(\)"):
        layer.backward(np.zeros((B, T, H)))
    layer.forward(np.zeros((B, T, D)))
    with pytest.raises(ValueError, match=r"expected d_out \(the gradient of the latest forward's output\) of shape "
                                         r"\(3, 7, 5\), got \(3, 7, 4\)"):
        layer.backward(np.zeros((B, T, 4)))
    with pytest.raises(ValueError, match=r"expected d_state\[0\] \(h\) of shape \(1, 3, 5\), got \(3, 5\)"):
        layer.backward(np.zeros((B, T, H)), (np.zeros((B, H)), None))


def test_linear_forward_backward_and_errors(rng):
    head = Linear(H, 2, rng=0)
    x = rng.standard_normal((B, T, H))
    y = head.forward(x)
    assert y.shape == (B, T, 2)
    dy = rng.standard_normal(y.shape)
    dx = head.backward(dy)
    np.testing.assert_allclose(dx, dy @ head.params["W"].T)
    np.testing.assert_allclose(head.grads["W"], x.reshape(-1, H).T @ dy.reshape(-1, 2))
    with pytest.raises(ValueError, match=r"Linear: expected x of shape \(\.\.\., 5\), got \(3, 4\)"):
        head.forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"Linear: expected dy of shape \(3, 7, 2\), got \(3, 7, 3\)"):
        head.backward(np.zeros((B, T, 3)))
    with pytest.raises(RuntimeError, match=r"Linear: backward\(\) called before forward\(\)"):
        Linear(H, 2).backward(np.zeros((1, 2)))


def test_cell_parameter_names_may_not_clash():
    class Clashing(ElmanCell):
        def param_shapes(self):
            return {"R": (self.hidden_size, self.hidden_size), "b": (self.hidden_size,)}

    with pytest.raises(ValueError, match=r"cell parameter names \['b'\] clash with the layer's W, b"):
        Recurrent(D, H, cell=Clashing)


def test_dropout_with_one_layer_warns_as_torch_does():
    with pytest.warns(UserWarning, match=r"GRU: dropout=0.5 acts between stacked layers only"):
        GRU(D, H, dropout=0.5)


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru"])
@pytest.mark.parametrize("padding", [np.nan, np.inf, 1e300])
def test_padding_past_lengths_is_never_read(kind, padding, rng):
    """Whatever the steps past a length hold, outputs, states and every gradient are those of
    zero padding, dx there is exactly zero, and check_finite looks at valid steps only."""
    layer = make(kind, 2, True)
    x = rng.standard_normal((B, T, D))
    padded = x.copy()
    for b, n in enumerate(MIXED):
        padded[b, n:] = padding
    state = random_state(layer, rng)
    results = []
    for inputs in (x, padded):
        out, state_n = layer.forward(inputs, state, MIXED, check_finite=True)
        g_out = np.ones_like(out)
        layer.zero_grad()
        dx, d_state0 = layer.backward(g_out, state_n)
        results.append((out, state_n, dx, d_state0, {k: v.copy() for k, v in layer.grads.items()}))
    (out, state_n, dx, d_state0, grads), (p_out, p_state_n, p_dx, p_d_state0, p_grads) = results
    np.testing.assert_array_equal(p_out, out)
    for a, b in zip(np.atleast_1d(state_n), np.atleast_1d(p_state_n)):
        np.testing.assert_array_equal(b, a)
    for a, b in zip(np.atleast_1d(d_state0), np.atleast_1d(p_d_state0)):
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(p_dx, dx)
    for key in grads:
        np.testing.assert_array_equal(p_grads[key], grads[key])
    for b, n in enumerate(MIXED):
        assert np.all(p_dx[b, n:] == 0)
    with pytest.raises(ValueError, match=r"expected finite values in x, got NaN or inf"):
        bad = padded.copy()
        bad[1, 0, 0] = np.nan  # a valid step
        layer.forward(bad, state, MIXED, check_finite=True)


def test_recording_keeps_the_gradient_reaching_every_state_in_input_order(rng):
    """A reverse run's tape is put back in input time order; without recording nothing is kept."""
    layer = make("lstm", num_layers=2, bidirectional=True)
    x, d_out = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, 2 * H))
    layer.forward(x, lengths=MIXED)
    layer.backward(d_out)
    assert layer.state_grads is None
    layer.record_state_grads = True
    layer.forward(x, lengths=MIXED)
    layer.backward(d_out)
    assert sorted(layer.state_grads) == ["l0", "l0_reverse", "l1", "l1_reverse"]
    h, c = layer.state_grads["l1_reverse"]
    assert h.shape == c.shape == (B, T, H)
    # the last layer's reverse run: at its last step (input step 0) only d_out reaches h
    np.testing.assert_array_equal(h[np.arange(B), 0], d_out[np.arange(B), 0, H:])
    np.testing.assert_array_equal(h[2, MIXED[2]:], 0.0)  # nothing past a length


def test_traces_replay_what_forward_computed(rng):
    layer = make("gru", bidirectional=True)
    with pytest.raises(RuntimeError, match=r"GRU: traces\(\) called before forward\(\)"):
        layer.traces()
    x = rng.standard_normal((B, T, D))
    layer.forward(x, lengths=MIXED)
    forward, reverse = layer.traces()
    assert (forward.name, forward.direction, reverse.name, reverse.direction) == ("l0", 0, "l0_reverse", 1)
    valid = (np.arange(T) < MIXED[:, None]).T  # (T, B); past a length the input reads as zero
    expected = (x @ layer.params["l0.W"] + layer.params["l0.b"]).transpose(1, 0, 2)
    np.testing.assert_allclose(forward.xw[valid], expected[valid])
    assert len(reverse.caches) == T and reverse.step_mask.shape == (T, B, 1)
    steps = np.arange(T)[:, None, None].repeat(B, 1)
    np.testing.assert_array_equal(reverse.in_input_order(reverse.in_input_order(steps)), steps)
    assert Recurrent.run_name("") == "l0" and Recurrent.run_name("l1_reverse.") == "l1_reverse"


@pytest.mark.parametrize("shape", [(T, D), (1, T, D), (B, T, D)])
def test_changing_the_input_after_forward_does_not_change_the_gradients(shape, rng):
    layer = make("gru")
    x, d_out = rng.standard_normal(shape), rng.standard_normal(shape[:-1] + (H,))
    layer.forward(x)
    layer.backward(d_out)
    expected = {k: g.copy() for k, g in layer.grads.items()}
    layer.zero_grad()
    layer.forward(x)
    x[...] = np.nan  # the caller reuses its buffer
    layer.backward(d_out)
    assert all(np.array_equal(layer.grads[k], expected[k]) for k in expected)


#: the layers whose cell has forward_sequence / backward_sequence
FAST_PATHS = {"rnn-tanh", "rnn-relu", "lstm", "lstm-peepholes", "lstm-proj", "lstm-proj-peepholes", "gru",
              "gru-reset-before"}


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fast_path_computes_what_the_steps_compute(kind, dtype, rng):
    """Without lengths a built-in cell runs its forward_sequence/backward_sequence; with lengths
    equal to T the layer runs step by step: outputs, every gradient and the recorded state
    gradients agree to rounding, with an initial state and a final-state gradient."""
    layer = make(kind, bidirectional=True, dtype=dtype)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    state = random_state(layer, rng)
    state = tuple(s.astype(dtype) for s in state) if isinstance(state, tuple) else state.astype(dtype)
    d_out = rng.standard_normal((B, T, 2 * layer.h_size)).astype(dtype)
    d_state = tuple(s.astype(dtype) for s in random_state(layer, rng)) if layer.cell.state_size > 1 \
        else random_state(layer, rng).astype(dtype)
    layer.record_state_grads = True
    results = []
    for lengths in (None, np.full(B, T)):
        layer.zero_grad()
        out, state_n = layer.forward(x, state, lengths=lengths)
        ran_fast = isinstance(layer.traces()[0].caches, StepCaches)
        assert ran_fast == (lengths is None and kind in FAST_PATHS)
        dx, d_state0 = layer.backward(d_out, d_state)
        results.append((out, state_n, dx, d_state0, {k: g.copy() for k, g in layer.grads.items()},
                        {name: parts for name, parts in layer.state_grads.items()}))
    tol = {"rtol": 1e-12, "atol": 1e-13} if dtype == np.float64 else {"rtol": 2e-5, "atol": 2e-6}
    fast, steps = results
    for got, want in zip(fast[:4], steps[:4]):
        for g_part, w_part in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(g_part, w_part, **tol)
    for name in fast[4]:
        np.testing.assert_allclose(fast[4][name], steps[4][name], **tol, err_msg=name)
    for run in fast[5]:
        for got, want in zip(fast[5][run], steps[5][run]):
            np.testing.assert_allclose(got, want, **tol, err_msg=run)


def test_a_forward_sequence_without_its_own_backward_runs_the_steps_backward(rng):
    """A subclass that writes forward_sequence alone does not inherit its parent's backward_sequence."""
    class ForwardOnly(ElmanCell):
        def forward_sequence(self, p, xw, state0):
            return super().forward_sequence(p, xw, state0)

        def step_backward(self, p, g, d_state, cache):  # a planted error the parent's fast backward would hide
            d_xw, d_rec, d_prev = super().step_backward(p, g, d_state, cache)
            return 2 * d_xw, 2 * d_rec, d_prev

    layer = Recurrent(D, H, cell=lambda size: ForwardOnly(size), rng=3)
    x, d_out = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H))
    layer.forward(x)
    assert isinstance(layer.traces()[0].caches, StepCaches)  # the forward ran fast
    layer.backward(d_out)
    fast = SimpleRNN(D, H, rng=3)
    fast.forward(x)
    fast.backward(d_out)
    np.testing.assert_allclose(layer.grads["b"], 2 * fast.grads["b"], rtol=1e-12)  # the step backward ran


# ---------------------------------------------------------------- projections
def test_projections_give_h_and_the_output_the_projected_width(rng):
    """h, out and a higher layer's input have width P (directions * P), c keeps H."""
    layer = make("lstm-proj", 2, True)
    assert layer.h_size == P and layer.cell.state_widths == (P, H)
    shapes = {name: value.shape for name, value in layer.params.items()}
    assert shapes["l0.R"] == (P, 4 * H) and shapes["l0.W_hr"] == (H, P) and shapes["l1.W"] == (2 * P, 4 * H)
    x = rng.standard_normal((B, T, D))
    out, (h, c) = layer.forward(x)
    assert out.shape == (B, T, 2 * P) and h.shape == (4, B, P) and c.shape == (4, B, H)
    np.testing.assert_array_equal(out[:, -1, :P], h[2])  # the last layer's forward h(T)
    np.testing.assert_array_equal(out[:, 0, P:], h[3])   # its reverse run ends at input step 0
    dx, (dh0, dc0) = layer.backward(np.ones_like(out))
    assert dx.shape == (B, T, D) and dh0.shape == (4, B, P) and dc0.shape == (4, B, H)
    out1, (h1, c1) = layer.forward(x[0])  # unbatched
    assert out1.shape == (T, 2 * P) and h1.shape == (4, P) and c1.shape == (4, H)


def test_the_projection_is_the_last_product_of_each_step(rng):
    """h(t) = (o * tanh(c(t))) W_hr: the step of the same LSTM without W_hr, projected."""
    layer = make("lstm-proj")
    x = rng.standard_normal((B, T, D))
    out, _ = layer.forward(x)
    caches = layer.traces()[0].caches
    for t in (0, T - 1):
        np.testing.assert_allclose(out[:, t], (caches[t].o * caches[t].tanh_c) @ layer.params["W_hr"], rtol=1e-14)


@pytest.mark.parametrize("proj_size, error, message", [
    (-1, ValueError, "LSTM: expected proj_size >= 0, got -1"),
    (H, ValueError, f"LSTM: expected proj_size < hidden_size={H} (the projection narrows h), got proj_size={H}"),
    (1.0, TypeError, "LSTM: expected proj_size to be an int >= 0, got float 1.0"),
    (True, TypeError, "LSTM: expected proj_size to be an int >= 0, got bool True"),
])
def test_bad_projection_sizes_are_refused(proj_size, error, message):
    with pytest.raises(error, match=re.escape(message)):
        LSTM(D, H, proj_size=proj_size)


def test_projections_refuse_a_state_or_gradient_of_the_hidden_width(rng):
    layer = make("lstm-proj")
    x = rng.standard_normal((B, T, D))
    with pytest.raises(ValueError, match=re.escape(f"LSTM: expected state[0] (h) of shape (1, {B}, {P}), "
                                                   f"got (1, {B}, {H})")):
        layer.forward(x, (np.zeros((1, B, H)), np.zeros((1, B, H))))
    out, _ = layer.forward(x, (np.zeros((1, B, P)), np.zeros((1, B, H))))
    with pytest.raises(ValueError, match=re.escape(f"LSTM: expected d_out (the gradient of the latest forward's output) of "
                                                   f"shape ({B}, {T}, {P}), got ({B}, {T}, {H})")):
        layer.backward(np.zeros((B, T, H)))
    with pytest.raises(ValueError, match=re.escape(f"LSTM: expected d_state[1] (c) of shape (1, {B}, {H}), "
                                                   f"got (1, {B}, {P})")):
        layer.backward(out, (None, np.zeros((1, B, P))))


def test_projections_at_a_users_size_pass_the_directional_check(rng):
    """H = 112, P = 40, T = 104, both directions: random directions through every array."""
    layer = LSTM(6, 112, bidirectional=True, proj_size=40, rng=2)
    report = check_layer(layer, rng.standard_normal((2, 104, 6)), mode="directional")  # the fast path
    assert report.passed, str(report)


# ---------------------------------------------------------------- Keras' merge_mode and go_backwards
@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave"])
def test_merge_modes_have_exact_gradients_through_a_stack(kind, merge_mode, rng):
    layer = make(kind, 2, True, merge_mode=merge_mode, go_backwards=merge_mode == "mul")
    width = layer.h_size
    assert layer.output_size == width and layer.params["l1.W"].shape[0] == width  # layer 1 reads the merged width
    report = check_layer(layer, rng.standard_normal((B, T, D)), random_state(layer, rng), MIXED)
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru"])
@pytest.mark.parametrize("lengths", [None, MIXED], ids=["equal", "mixed"])
def test_go_backwards_reads_from_the_last_valid_step_and_returns_the_reversed_sequence(kind, lengths, rng):
    """Keras' go_backwards: the output in reading order (out[:, 0] after the last valid step),
    the final state after the first step; with lengths, reversed within each length."""
    backwards, plain = make(kind, 2, go_backwards=True), make(kind, 2)
    x = rng.standard_normal((B, T, D))
    out, state = backwards.forward(x, lengths=lengths)
    for b in range(B):
        n = T if lengths is None else lengths[b]
        expected, expected_state = plain.forward(x[b:b + 1, :n][:, ::-1])
        np.testing.assert_allclose(out[b:b + 1, :n], expected, rtol=0, atol=1e-14)
        np.testing.assert_array_equal(out[b, n:], 0.0)
        for part, part_expected in zip(*(s if isinstance(s, tuple) else (s,) for s in (state, expected_state))):
            np.testing.assert_allclose(part[:, b:b + 1], part_expected, rtol=0, atol=1e-14)
    report = check_layer(backwards, x, random_state(backwards, rng), lengths)
    assert report.passed, str(report)


def test_bad_merge_modes_and_go_backwards_are_refused():
    with pytest.raises(ValueError, match="GRU: unknown merge_mode 'max'.*concat, sum, mul, ave"):
        GRU(D, H, bidirectional=True, merge_mode="max")
    with pytest.raises(ValueError, match="LSTM: merge_mode='sum' merges the two directions.*got bidirectional=False"):
        LSTM(D, H, merge_mode="sum")
    with pytest.raises(TypeError, match="SimpleRNN: expected go_backwards to be a bool, got 1"):
        SimpleRNN(D, H, go_backwards=1)


@pytest.mark.parametrize("options", [{"recurrent_dropout": 0.3}, {"zoneout": (0.2, 0.1)},
                                     {"input_dropout": 0.3, "merge_mode": "sum"}, {"go_backwards": True}],
                         ids=["recurrent-dropout", "zoneout", "input-dropout-sum", "go-backwards"])
def test_projections_with_the_shared_options_have_exact_gradients(options, rng):
    """Masks on h (recurrent dropout, zoneout) have the projected width P; a merged output too."""
    layer = make("lstm-proj", 2, True, **options)
    report = check_layer(layer, rng.standard_normal((B, T, D)), random_state(layer, rng), MIXED)
    assert report.passed, str(report)
    assert layer.forward(rng.standard_normal((B, T, D)))[0].shape[-1] == layer.output_size


@pytest.mark.parametrize("layer, text", [
    (lambda: SimpleRNN(3, 4), "SimpleRNN(3, 4, dtype=float64)"),
    (lambda: SimpleRNN(3, 4, nonlinearity="relu", bidirectional=True), "SimpleRNN(3, 4, nonlinearity='relu', "
                                                                        "bidirectional=True, dtype=float64)"),
    (lambda: LSTM(3, 4, peepholes=True), "LSTM(3, 4, peepholes=True, dtype=float64)"),
    (lambda: LSTM(3, 8, 2, proj_size=2, bias=False, dtype=np.float32),
     "LSTM(3, 8, num_layers=2, proj_size=2, bias=False, dtype=float32)"),
    (lambda: GRU(3, 4, reset_after=False, zoneout=0.1), "GRU(3, 4, reset_after=False, zoneout=(0.1,), dtype=float64)"),
    (lambda: GRU(3, 4, layer_norm=True), "GRU(3, 4, layer_norm=True, dtype=float64)"),
    (lambda: Recurrent(3, 4, cell=ElmanCell), "Recurrent(3, 4, cell=ElmanCell, dtype=float64)"),
], ids=["rnn", "relu-bidir", "peepholes", "projection", "gru-cho", "gru-ln", "custom"])
def test_repr_names_the_cell_and_every_option_that_is_not_its_default(layer, text):
    assert repr(layer()) == text


def test_activations_are_batch_first_in_input_order_for_both_directions_with_lengths():
    layer = SimpleRNN(3, 4, bidirectional=True, rng=0)
    x, lengths = np.random.default_rng(1).standard_normal((2, 6, 3)), np.array([6, 4])
    out, _ = layer.forward(x, lengths=lengths)
    acts = layer.activations()
    assert sorted(acts) == ["l0", "l0_reverse"] and acts["l0"]["h"][0] == "tanh"
    valid = np.arange(6)[None, :] < lengths[:, None]  # (B, T)
    for name, half in (("l0", out[..., :4]), ("l0_reverse", out[..., 4:])):
        values = acts[name]["h"][1]  # (B, T, H)
        assert values.shape == (2, 6, 4) and np.allclose(values[valid], half[valid], rtol=0, atol=1e-15)


def test_lstm_activations_are_its_gates_at_every_step():
    lstm = LSTM(3, 5, rng=0)
    x = np.random.default_rng(2).standard_normal((2, 7, 3))
    out, _ = lstm.forward(x)
    gates = lstm.activations()["l0"]
    assert {name: kind for name, (kind, _) in gates.items()} == {
        "i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid", "tanh_c": "tanh"}
    assert np.allclose(gates["o"][1] * gates["tanh_c"][1], out, rtol=0, atol=1e-15)  # h = o * tanh(c)
    h_prev = np.concatenate([np.zeros((2, 1, 5)), out[:, :-1]], axis=1)
    z = x @ lstm.params["W"] + h_prev @ lstm.params["R"] + lstm.params["b"]  # (B, T, 4H)
    assert np.allclose(gates["f"][1], 1 / (1 + np.exp(-z[..., 5:10])), rtol=0, atol=1e-15)
    with pytest.raises(RuntimeError, match=r"LSTM: activations\(\) called before forward\(\)"):
        LSTM(3, 5).activations()
