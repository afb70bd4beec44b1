"""Initialisers: the rules, the block structure of gate-stacked weights, and name errors."""
import numpy as np
import pytest

from numpy_rnn import GRU, LSTM, SimpleRNN
from numpy_rnn.init import INITIALIZERS, get_initializer, scaled_identity


def test_every_named_initialiser_has_the_shape_and_dtype(rng):
    for name in [*INITIALIZERS, "torch"]:
        value = get_initializer(name, 4)((4, 12), rng, np.float32)
        assert value.shape == (4, 12) and value.dtype == np.float32, name


def test_torch_default_bound(rng):
    value = get_initializer("torch", 16)((16, 48), rng, np.float64)
    assert np.abs(value).max() <= 0.25 and np.abs(value).max() > 0.2


def test_identity_and_orthogonal_fill_each_gate_block(rng):
    np.testing.assert_array_equal(scaled_identity(0.5)((3, 9), rng, np.float64), np.hstack([0.5 * np.eye(3)] * 3))
    q = get_initializer("orthogonal", 3)((3, 6), rng, np.float64)
    for block in (q[:, :3], q[:, 3:]):
        np.testing.assert_allclose(block @ block.T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("name, bound", [("lecun_uniform", np.sqrt(3 / 50)), ("glorot_uniform", np.sqrt(6 / 80))])
def test_uniform_bounds(name, bound, rng):
    value = get_initializer(name, 30)((50, 30), rng, np.float64)
    assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound


@pytest.mark.parametrize("name, std", [("lecun_normal", np.sqrt(1 / 400)), ("glorot_normal", np.sqrt(2 / 800))])
def test_normal_scales(name, std, rng):
    value = get_initializer(name, 400)((400, 400), rng, np.float64)
    assert value.std() == pytest.approx(std, rel=0.02)


def test_layer_init_by_name_and_callable():
    layer = SimpleRNN(3, 4, init={"R": "identity", "b": "zeros", "W": lambda shape, rng, dtype: np.ones(shape, dtype)})
    np.testing.assert_array_equal(layer.params["R"], np.eye(4))
    assert not layer.params["b"].any() and np.all(layer.params["W"] == 1)
    gru = GRU(3, 4, init={"b_hn": "zeros"})
    assert not gru.params["b_hn"].any()


def test_errors_list_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown initialiser 'xavier'; valid names: glorot_normal, glorot_uniform, identity"):
        get_initializer("xavier", 3)
    with pytest.raises(ValueError, match=r"expected a \(H, G\*H\) matrix for a square initialiser, got shape \(3, 4\)"):
        get_initializer("identity", 3)((3, 4), np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match=r"expected init\['W'\] result of shape \(3, 4\), got \(2,\)"):
        SimpleRNN(3, 4, init={"W": lambda shape, rng, dtype: np.zeros(2)})


def test_parametric_names(rng):
    small = get_initializer("normal:0.001", 4)((200, 200), rng, np.float64)
    assert small.std() == pytest.approx(0.001, rel=0.02)
    assert np.abs(get_initializer("uniform:0.5", 4)((50, 50), rng, np.float64)).max() <= 0.5
    np.testing.assert_array_equal(get_initializer("constant:1", 4)((3,), rng, np.float64), np.ones(3))
    np.testing.assert_array_equal(get_initializer("scaled_identity:0.9", 2)((2, 2), rng, np.float64), 0.9 * np.eye(2))
    layer = SimpleRNN(3, 4, nonlinearity="relu", init={"R": "identity", "W": "normal:0.001", "b": "zeros"})
    assert np.abs(layer.params["W"]).max() < 0.01
    with pytest.raises(ValueError, match=r"expected normal:<number>, got 'normal:x'"):
        get_initializer("normal:x", 3)
    with pytest.raises(ValueError, match=r"valid names: .*normal:<number>"):
        get_initializer("gaussian:1", 3)


def test_chrono_lstm_biases_spread_the_forget_time_constants(rng):
    H, T_max = 4000, 100
    b = get_initializer("chrono:100", H)((4 * H,), rng, np.float64)
    b_i, b_f, b_g, b_o = np.split(b, 4)
    np.testing.assert_array_equal(b_i, -b_f)
    assert not b_g.any() and not b_o.any()
    tau_minus_1 = np.exp(b_f)  # sig(b_f) = 1 - 1/tau: tau - 1 = exp(b_f) ~ U[1, T_max - 1]
    assert tau_minus_1.min() >= 1.0 and tau_minus_1.max() <= T_max - 1
    deciles = np.quantile(tau_minus_1, np.linspace(0.1, 0.9, 9))
    # a decile of n uniform draws over a range of 98 has a standard deviation under 98 * sqrt(0.25 / n) = 0.8
    np.testing.assert_allclose(deciles, 1 + (T_max - 2) * np.linspace(0.1, 0.9, 9), atol=4.0)


def test_chrono_gru_sets_the_update_gate_only(rng):
    H = 50
    b_r, b_z, b_n = np.split(get_initializer("chrono:20", H)((3 * H,), rng, np.float64), 3)
    assert not b_r.any() and not b_n.any()
    assert np.all((b_z >= 0) & (b_z <= np.log(19))) and b_z.std() > 0


def test_chrono_in_layers_is_reproducible_and_drawn_per_run():
    def biases(**options):
        return LSTM(3, 6, bidirectional=True, rng=5, **options).params

    first, again = biases(init={"b": "chrono:30"}), biases(init={"b": "chrono:30"})
    np.testing.assert_array_equal(first["l0.b"], again["l0.b"])
    assert not np.array_equal(first["l0.b"], first["l0_reverse.b"])
    normalised = biases(init={"beta": "chrono:30"}, layer_norm=True)["l0.beta"]
    np.testing.assert_array_equal(normalised[:6], -normalised[6:12])
    gru = GRU(3, 6, init={"b": "chrono:30"}, rng=0).params["b"]
    assert gru[6:12].any() and not gru[:6].any() and not gru[12:].any()


@pytest.mark.parametrize("make, message", [
    (lambda: get_initializer("chrono:1.5", 4), r"expected chrono:T with T >= 2 .*got chrono:1.5"),
    (lambda: get_initializer("chrono:x", 4), r"expected chrono:<number>, got 'chrono:x'"),
    (lambda: LSTM(3, 4, init={"W": "chrono:10"}), r"chrono:10 sets the gate biases of an LSTM \(16,\) or a GRU \(12,\) "
                                                  r"of hidden size 4 .*got shape \(3, 16\)"),
    (lambda: SimpleRNN(3, 4, init={"b": "chrono:10"}), r"got shape \(4,\)"),
    (lambda: GRU(3, 4, init={"b_hn": "chrono:10"}), r"got shape \(4,\)"),
])
def test_chrono_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_forget_bias_by_name_is_zero_but_the_forget_block():
    b = LSTM(3, 5, init={"b": "forget_bias:1"}, rng=0).params["b"]
    np.testing.assert_array_equal(b, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    layer = LSTM(3, 5, forget_bias=1.0, rng=0)  # the layer option keeps the other gates' draws
    assert layer.params["b"][:5].any() and (layer.params["b"][5:10] == 1).all()
    with pytest.raises(ValueError, match=r"forget_bias:1 sets the forget gate's block of an LSTM bias \(20,\) of "
                                         r"hidden size 5 .*got shape \(15,\)"):
        GRU(3, 5, init={"b": "forget_bias:1"})
    with pytest.raises(ValueError, match=r"valid names: .*chrono:<T>, forget_bias:<number>"):
        LSTM(3, 5, init={"b": "forget"})
