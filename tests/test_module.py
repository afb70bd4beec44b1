"""The Module contract shared by every layer and model: params/grads, zero_grad, train/eval,
state_dict/load_state_dict."""
import numpy as np
import pytest

from numpy_rnn import (
    GRU,
    LSTM,
    RNN,
    Embedding,
    Linear,
    ModelConfig,
    SequenceModel,
    SimpleRNN,
)
from numpy_rnn.module import Module

MODULES = {
    "SimpleRNN": lambda: SimpleRNN(3, 4, rng=0),
    "LSTM": lambda: LSTM(3, 4, num_layers=2, dropout=0.5, rng=0),
    "GRU": lambda: GRU(3, 4, bidirectional=True, rng=0),
    "Linear": lambda: Linear(3, 2, rng=0),
    "Embedding": lambda: Embedding(5, 3, rng=0),
    "RNN": lambda: RNN(3, 4, 2, rng=0),
    "SequenceModel": lambda: SequenceModel(ModelConfig(6, 6, cell="lstm", hidden_size=4, num_layers=2, dropout=0.5,
                                                       tokens=True, embedding_size=3, sequence_output=True), rng=0),
}


@pytest.fixture(params=list(MODULES))
def module(request):
    return MODULES[request.param]()


def test_params_and_grads_share_keys_shapes_and_dtypes(module):
    assert isinstance(module, Module)
    assert list(module.params) == list(module.grads)
    for name, value in module.params.items():
        assert module.grads[name].shape == value.shape and module.grads[name].dtype == value.dtype


def test_zero_grad_clears_every_gradient(module):
    for g in module.grads.values():
        g.fill(3.0)
    module.zero_grad()
    assert all(not g.any() for g in module.grads.values())


def test_train_and_eval_reach_every_part(module):
    assert module.training
    assert module.eval() is module and not module.training
    assert all(not child.training for child in module.children())
    assert module.train() is module and module.training and all(child.training for child in module.children())
    with pytest.raises(TypeError, match="expected mode to be a bool, got int 1"):
        module.train(1)


def test_state_dict_round_trip_copies_both_ways(module):
    state = module.state_dict()
    assert list(state) == list(module.params)
    assert all(state[name] is not value and np.array_equal(state[name], value) for name, value in module.params.items())
    new = {name: np.full_like(value, 0.25) for name, value in state.items()}
    kept = {name: value.copy() for name, value in new.items()}
    arrays = dict(module.params)
    module.load_state_dict(new)
    assert all(module.params[name] is arrays[name] for name in arrays)  # copied into the same arrays
    assert all(np.array_equal(module.params[name], kept[name]) for name in kept)
    module.params[next(iter(module.params))][...] = 7.0
    assert all(np.array_equal(new[name], kept[name]) for name in kept)  # the caller's arrays unchanged


def test_load_state_dict_checks_everything_before_changing_anything(module):
    before = module.state_dict()
    first, last = next(iter(before)), list(before)[-1]
    changed_then_bad = {**before, first: before[first] + 1.0, last: np.zeros(before[last].shape + (1,))}
    with pytest.raises(ValueError, match=rf"expected state\['{last}'\] of shape"):
        module.load_state_dict(changed_then_bad)
    with pytest.raises(TypeError, match=rf"expected state\['{last}'\] of dtype float64"):
        module.load_state_dict({**before, last: before[last].astype(np.float32)})
    with pytest.raises(ValueError, match=rf"missing \['{first}'\], unexpected \['extra'\]"):
        module.load_state_dict({**{k: v for k, v in before.items() if k != first}, "extra": np.zeros(1)})
    with pytest.raises(TypeError, match="expected state to be a dict of name -> array, got list"):
        module.load_state_dict(list(before.values()))
    assert all(np.array_equal(module.params[name], value) for name, value in before.items())


def test_a_model_shares_its_parts_arrays():
    model = MODULES["SequenceModel"]()
    assert model.params["rnn.l1.R"] is model.rnn.params["l1.R"] and model.grads["head.b"] is model.head.grads["b"]
    assert [type(child).__name__ for child in model.children()] == ["Embedding", "LSTM", "Linear"]
    assert repr(model.embedding) == "Embedding(6, 3, dtype=float64)"
