"""Input dropout, recurrent (variational) dropout and zoneout: exact gradients for the drawn masks
on every cell, what each computes (against plain loops), masks, train/eval, errors."""
import numpy as np
import pytest

from numpy_rnn import GRU, LSTM, Recurrent, SimpleRNN, parallel
from numpy_rnn.cells import Cell, ElmanCell, sigmoid
from numpy_rnn.gradcheck import check_layer
from numpy_rnn.regularizers import Masks

B, T, D, H, P = 3, 6, 4, 5, 2  # all different on purpose
MIXED = np.array([6, 2, 4])  # unsorted lengths

CELLS = {
    "rnn-tanh": (SimpleRNN, {}),
    "rnn-relu": (SimpleRNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, {}),
    "lstm-peepholes": (LSTM, {"peepholes": True}),
    "lstm-proj": (LSTM, {"proj_size": P}),
    "gru": (GRU, {}),
    "gru-reset-before": (GRU, {"reset_after": False}),
}
OPTIONS = {
    "input": {"input_dropout": 0.3},
    "recurrent": {"recurrent_dropout": 0.4},
    "zoneout": {"zoneout": 0.3},
    "all": {"input_dropout": 0.2, "recurrent_dropout": 0.3, "zoneout": 0.25, "dropout": 0.2},
}


def make(kind, num_layers=1, bidirectional=False, **options):
    cls, own = CELLS[kind]
    return cls(D, H, num_layers, bidirectional=bidirectional, rng=3, **own, **options)


def random_state(layer, rng):
    parts = tuple(rng.standard_normal((layer.num_layers * layer.num_directions, B, width))
                  for width in layer.cell.state_widths)
    return parts if len(parts) > 1 else parts[0]


# ------------------------------------------------------------------ exact gradients
@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("stack", ["one", "two-bidirectional-mixed"])
def test_gradients_are_exact_for_the_drawn_masks(kind, option, stack, rng):
    num_layers, bidirectional, lengths = (1, False, None) if stack == "one" else (2, True, MIXED)
    options = {k: v for k, v in OPTIONS[option].items() if num_layers > 1 or k != "dropout"}
    layer = make(kind, num_layers, bidirectional, bias=stack == "one", **options)
    report = check_layer(layer, rng.standard_normal((B, T, D)), random_state(layer, rng), lengths)
    assert report.passed, str(report)
    assert report.max_rel_error <= 1e-6, str(report)
    assert layer.masks is not None


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradients_are_exact_in_evaluation_with_zoneouts_expectation(kind, rng):
    layer = make(kind, 2, True, zoneout=0.3, recurrent_dropout=0.5).eval()
    report = check_layer(layer, rng.standard_normal((B, T, D)), random_state(layer, rng), MIXED)
    assert report.passed, str(report)
    assert layer.masks is None


def test_a_wrong_zoneout_backward_is_caught(rng, monkeypatch):
    from numpy_rnn import regularizers

    def forgets_the_carry(self, p, g, d_state, cache):  # drops ds(t-1) += ds d(t)
        d_cell = tuple(d if k is None else d * (1.0 - k) for d, k in zip(d_state, cache.keeps))
        return self.inner.step_backward(p, g, d_cell, cache.inner)

    monkeypatch.setattr(regularizers.ZoneoutCell, "step_backward", forgets_the_carry)
    layer = make("gru", zoneout=0.5)
    assert not check_layer(layer, rng.standard_normal((B, T, D))).passed


def test_a_custom_cell_gets_every_option(rng):
    class StepOnlyCell(ElmanCell):  # a custom cell: step methods alone, no fast path
        forward_sequence = Cell.forward_sequence

    layer = Recurrent(D, H, 2, bidirectional=True, merge_mode="ave", go_backwards=True, input_dropout=0.2,
                      recurrent_dropout=0.3, zoneout=0.2, cell=StepOnlyCell, rng=3)
    report = check_layer(layer, rng.standard_normal((B, T, D)), random_state(layer, rng), MIXED)
    assert report.passed, str(report)


# ------------------------------------------------------------------ what they compute
def _elman_loop(layer, x, h0, m_x=None, m_h=None, zone=None, p=None):
    """A plain Elman loop with input dropout m_x (B, D), recurrent dropout m_h (B, H) and
    zoneout masks zone (T, B, H) or the rate p (evaluation)."""
    W, R, b = (layer.params[k] for k in ("W", "R", "b"))
    x = x if m_x is None else x * m_x[:, None, :]
    h, outs = h0, []
    for t in range(x.shape[1]):
        read = h if m_h is None else h * m_h
        new = np.tanh(x[:, t] @ W + read @ R + b)
        d = zone[t] if zone is not None else p
        h = new if d is None else d * h + (1 - d) * new
        outs.append(h)
    return np.stack(outs, axis=1), h


def test_input_and_recurrent_dropout_are_one_mask_per_sequence_shared_over_time(rng):
    layer = SimpleRNN(D, H, input_dropout=0.5, recurrent_dropout=0.5, rng=1)
    x, h0 = rng.standard_normal((B, T, D)), rng.standard_normal((1, B, H))
    out, h_n = layer.forward(x, h0)
    masks = layer.masks
    (m_x,), (m_h,) = masks.inputs, masks.recurrent
    assert m_x.shape == (B, D) and m_h.shape == (B, H)  # no time axis: the same mask at every step
    assert set(np.unique(np.r_[m_x.ravel(), m_h.ravel()])) <= {0.0, 2.0}  # inverted: 1/keep
    expected, h_last = _elman_loop(layer, x, h0[0], m_x, m_h)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(h_n[0], h_last, rtol=0, atol=1e-14)


def test_zoneout_keeps_units_with_fresh_masks_per_step_and_its_expectation_at_eval(rng):
    layer = SimpleRNN(D, H, zoneout=0.4, rng=1)
    x, h0 = rng.standard_normal((B, T, D)), rng.standard_normal((1, B, H))
    out, _ = layer.forward(x, h0)
    ((zone,),) = layer.masks.zoneout
    assert zone.shape == (T, B, H) and set(np.unique(zone)) == {0.0, 1.0}
    assert not all(np.array_equal(zone[0], zone[t]) for t in range(1, T))  # fresh per step
    np.testing.assert_allclose(out, _elman_loop(layer, x, h0[0], zone=zone)[0], rtol=0, atol=1e-14)
    out_eval, _ = layer.eval().forward(x, h0)
    np.testing.assert_allclose(out_eval, _elman_loop(layer, x, h0[0], p=0.4)[0], rtol=0, atol=1e-14)


def test_lstm_zoneout_has_a_rate_per_state_part(rng):
    layer = LSTM(D, H, zoneout=(0.0, 0.5), rng=1)
    x = rng.standard_normal((B, T, D))
    out, (h_n, c_n) = layer.forward(x)
    ((zone_h, zone_c),) = layer.masks.zoneout
    assert zone_h is None and zone_c.shape == (T, B, H)
    assert layer.zoneout == (0.0, 0.5)
    layer.eval()
    h = c = np.zeros((B, H))
    W, R, b = (layer.params[k] for k in ("W", "R", "b"))
    for t in range(T):  # the paper's LSTM: h from the cell's own new c, then c zoned
        i, f, g, o = np.split(x[:, t] @ W + h @ R + b, 4, axis=-1)
        c_cell = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c_cell)
        c = 0.5 * c + 0.5 * c_cell
    _, (h_eval, c_eval) = layer.forward(x)
    np.testing.assert_allclose(h_eval[0], h, rtol=0, atol=1e-14)
    np.testing.assert_allclose(c_eval[0], c, rtol=0, atol=1e-14)


def test_gru_recurrent_dropout_keeps_the_carry_undropped(rng):
    layer = GRU(D, H, recurrent_dropout=0.5, rng=1)
    x = rng.standard_normal((B, T, D))
    out, _ = layer.forward(x)
    (m,) = layer.masks.recurrent
    W, R, b, b_hn = (layer.params[k] for k in ("W", "R", "b", "b_hn"))
    h, expected = np.zeros((B, H)), []
    for t in range(T):  # Keras 3's GRU: h(t-1) m in the matmul, h(t-1) in the carry
        xw, u = x[:, t] @ W + b, (h * m) @ R
        r, z = sigmoid(xw[:, :H] + u[:, :H]), sigmoid(xw[:, H:2 * H] + u[:, H:2 * H])
        n = np.tanh(xw[:, 2 * H:] + r * (u[:, 2 * H:] + b_hn))
        h = (1 - z) * n + z * h
        expected.append(h)
    np.testing.assert_allclose(out, np.stack(expected, axis=1), rtol=0, atol=1e-14)


def test_past_a_length_the_state_is_held_whatever_the_masks(rng):
    layer = LSTM(D, H, zoneout=0.3, recurrent_dropout=0.3, input_dropout=0.3, rng=1)
    x = rng.standard_normal((B, T, D))
    out, (h_n, c_n) = layer.forward(x, lengths=MIXED)
    masks = layer.masks
    for b, length in enumerate(MIXED):
        np.testing.assert_array_equal(out[b, length:], 0.0)
        np.testing.assert_array_equal(h_n[0, b], out[b, length - 1])
    again, _ = layer.apply(layer.params, x, None, MIXED, masks)
    np.testing.assert_array_equal(again, out)


def test_evaluation_draws_nothing_and_is_deterministic(rng):
    layer = GRU(D, H, 2, input_dropout=0.5, recurrent_dropout=0.5, zoneout=0.2, dropout=0.3, rng=1)
    x = rng.standard_normal((B, T, D))
    state_before = layer.rng.bit_generator.state
    layer.eval()
    first, _ = layer.forward(x)
    assert layer.masks is None and layer.rng.bit_generator.state == state_before
    np.testing.assert_array_equal(layer.forward(x)[0], first)
    np.testing.assert_array_equal(layer.apply(layer.params, x)[0], first)
    trained, _ = layer.train().forward(x)
    assert not np.allclose(trained, first)


def test_masks_are_reproducible_from_the_seed_and_drawn_only_where_asked(rng):
    x = rng.standard_normal((B, T, D))
    a, b = (LSTM(D, H, 2, bidirectional=True, recurrent_dropout=0.3, zoneout=0.1, rng=5) for _ in range(2))
    a.forward(x), b.forward(x)
    for ma, mb in zip(a.masks, b.masks):
        for x_a, x_b in zip(ma or [], mb or []):
            for part_a, part_b in zip(x_a if isinstance(x_a, tuple) else (x_a,), x_b if isinstance(x_b, tuple) else (x_b,)):
                np.testing.assert_array_equal(part_a, part_b)
    assert a.masks.inputs is None and a.masks.between is None
    assert len(a.masks.recurrent) == len(a.runs()) == 4
    plain = LSTM(D, H, 2, dropout=0.5, rng=5)
    plain.forward(x)
    assert isinstance(plain.masks, Masks) and plain.dropout_masks is plain.masks.between


@pytest.mark.parametrize("options", [{"input_dropout": 0.2},  # the fast path, on parts
                                     {"recurrent_dropout": 0.3, "zoneout": 0.2, "input_dropout": 0.2}])
def test_options_on_batch_parts_equal_the_unsplit_results(options, rng, monkeypatch):
    layer = LSTM(D, H, rng=2, **options)
    x = rng.standard_normal((8, T, D))
    out, _ = layer.forward(x)
    masks = layer.masks
    monkeypatch.setattr(parallel, "MIN_STEP_WORK", 0)
    split, _ = layer.apply(layer.params, x, None, None, masks)
    np.testing.assert_allclose(split, out, rtol=0, atol=1e-14)


def test_traces_show_the_layer_cells_own_caches(rng):
    layer = LSTM(D, H, recurrent_dropout=0.3, zoneout=0.2, rng=2)
    layer.forward(rng.standard_normal((B, T, D)))
    (trace,) = layer.traces()
    assert len(trace.caches) == T and trace.caches[0].c.shape == (B, H)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", ["input_dropout", "recurrent_dropout", "zoneout"])
@pytest.mark.parametrize("value", [1.0, -0.1, float("nan")])
def test_rates_outside_0_1_are_refused(name, value):
    with pytest.raises(ValueError, match=f"LSTM: expected {name}"):
        LSTM(D, H, **{name: value})


def test_bad_zoneout_forms_are_refused():
    with pytest.raises(ValueError, match=r"GRU: expected zoneout to be a rate or a tuple of 1 rates.*\(h\)"):
        GRU(D, H, zoneout=(0.1, 0.2))
    with pytest.raises(TypeError, match="LSTM: expected zoneout \\(c\\) to be a real number"):
        LSTM(D, H, zoneout=(0.1, "0.2"))


def test_recurrent_dropout_on_the_layer_normalised_gru_is_refused():
    with pytest.raises(ValueError, match="GRU: recurrent_dropout on LayerNormGRUCell is not supported"):
        GRU(D, H, layer_norm=True, recurrent_dropout=0.2)


def test_gradients_are_exact_at_a_realistic_size_in_random_directions(rng):
    layer = GRU(8, 100, input_dropout=0.2, recurrent_dropout=0.25, zoneout=0.1, rng=4)
    x = rng.standard_normal((2, 100, 8))  # B 2, T 100, D 8, H 100
    report = check_layer(layer, x, rng.standard_normal((1, 2, 100)), np.array([100, 61]), mode="directional")
    assert report.passed, str(report)
