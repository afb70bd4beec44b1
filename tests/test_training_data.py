"""The data adapters of the training loop: the TrainingData protocol, TaskData and StreamData."""
import numpy as np
import pytest

from numpy_rnn.checkpoint import CheckpointError
from numpy_rnn.config import TrainConfig
from numpy_rnn.tasks import CharCorpus
from numpy_rnn.training_data import (
    EVAL_BATCH,
    StreamData,
    TaskData,
    TrainingData,
    make_data,
    set_generator_state,
)


def _seeds():
    return np.random.SeedSequence(0).spawn(3)


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "head.txt"
    path.write_text(CharCorpus.builtin().text[:5000], encoding="utf-8")
    return str(path)


def test_make_data_picks_the_adapter_and_both_follow_the_protocol(text):
    task = make_data(TrainConfig(task="adding", seq_len=6, eval_size=300), _seeds())
    stream = make_data(TrainConfig(task="chars", text=text, bptt=20, batch_size=4), _seeds())
    assert isinstance(task, TaskData) and isinstance(stream, StreamData)
    for data in (task, stream):
        assert isinstance(data, TrainingData)
        assert data.carries_state == isinstance(data, StreamData)


def test_task_data_evaluation_sets_are_fixed_and_batched():
    data = make_data(TrainConfig(task="adding", seq_len=6, eval_size=300, dtype="float32"), _seeds())
    first, again = list(data.eval_batches("valid")), list(data.eval_batches("valid"))
    assert [len(x) for x, _ in first] == [EVAL_BATCH, 300 - EVAL_BATCH]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert first[0][0].dtype == np.float32
    assert not np.array_equal(first[0][0], next(iter(data.eval_batches("test")))[0])


def test_task_data_state_restores_the_batch_stream():
    data = make_data(TrainConfig(task="memory"), _seeds())
    data.next_batch()
    arrays, meta = data.state_dict()
    expected = data.next_batch()[0]
    other = make_data(TrainConfig(task="memory"), _seeds())
    other.load_state_dict(arrays, meta)
    assert np.array_equal(other.next_batch()[0], expected)


def test_stream_data_carries_state_and_restores_position_and_state(text):
    data = make_data(TrainConfig(task="chars", text=text, bptt=20, batch_size=4), _seeds())
    x, y, state = data.next_batch()
    assert state is None and np.array_equal(y[:, :-1], x[:, 1:])
    carried = (np.ones((1, 4, 3)), np.zeros((1, 4, 3)))
    data.carry(carried)
    arrays, meta = data.state_dict()
    assert meta == {"position": 1, "state_parts": 2} and set(arrays) == {"state.0", "state.1"}
    other = make_data(TrainConfig(task="chars", text=text, bptt=20, batch_size=4), _seeds())
    other.load_state_dict(arrays, meta)
    x2, _, state2 = other.next_batch()
    assert np.array_equal(x2, data.streams[:, 20:40]) and all(np.array_equal(a, b) for a, b in zip(state2, carried))


@pytest.mark.parametrize("arrays, meta, message", [
    ({}, {"position": 10**9, "state_parts": 0}, r"expected data.position an int in \[0, \d+\], got 1000000000"),
    ({}, {"position": "1", "state_parts": 0}, "expected data.position an int"),
    ({}, {"position": 0, "state_parts": 1}, r"expected data.state_parts to count the stored state arrays \[\]"),
    ({"state.0": np.zeros(1)}, {"position": 0}, r"expected data state with keys \['position', 'state_parts'\]"),
])
def test_stream_data_refuses_stored_state_of_the_wrong_form(arrays, meta, message, text):
    data = make_data(TrainConfig(task="chars", text=text, bptt=20, batch_size=4), _seeds())
    with pytest.raises(CheckpointError, match=message):
        data.load_state_dict(arrays, meta)


@pytest.mark.parametrize("state", [None, 5, {"bit_generator": "MT19937"}, {"bit_generator": "PCG64", "state": {}},
                                   {"bit_generator": "PCG64", "state": {"state": -1, "inc": 1}, "has_uint32": 0,
                                    "uinteger": 0}])
def test_generator_states_of_the_wrong_form_are_refused(state):
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    with pytest.raises(CheckpointError, match="expected model_rng to be a PCG64 generator state"):
        set_generator_state(rng, state, "model_rng")
    assert rng.bit_generator.state == before
