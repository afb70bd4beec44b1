"""Initialisers: the rules, the block structure of gate-stacked weights, and name errors."""
import numpy as np
import pytest

from numpy_rnn import GRU, SimpleRNN
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
