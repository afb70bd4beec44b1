"""The data adapters of the training loop: the TrainingData protocol, TaskData, StreamData and TaskStreamData."""
import numpy as np
import pytest

from numpy_rnn.checkpoint import CheckpointError
from numpy_rnn.config import TrainConfig
from numpy_rnn.tasks import CharCorpus
from numpy_rnn.training_data import (
    EVAL_BATCH,
    StreamData,
    TaskData,
    TaskStreamData,
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
    recall = make_data(TrainConfig(task="recall", bptt=4, seq_len=30), _seeds())
    assert isinstance(task, TaskData) and isinstance(stream, StreamData) and isinstance(recall, TaskStreamData)
    for data in (task, stream, recall):
        assert isinstance(data, TrainingData)
        assert data.carries_state == (not isinstance(data, TaskData))


def test_train_chars_keeps_the_head_of_the_training_text_and_the_evaluation_text_whole(text):
    whole = make_data(TrainConfig(task="chars", text=text, bptt=20, batch_size=4), _seeds())
    head = make_data(TrainConfig(task="chars", text=text, bptt=20, batch_size=4, train_chars=1000), _seeds())
    train = CharCorpus.from_file(text).split()[0]
    assert np.array_equal(head.streams, CharCorpus(train.text[:1000], train.vocab).stream(4))
    assert head.streams.size == 1000 and whole.streams.size == len(train) // 4 * 4
    for split in ("valid", "test"):
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(head.eval_batches(split), whole.eval_batches(split)))
    with pytest.raises(ValueError, match=rf"expected train_chars <= {len(train)} .*got 10000$"):
        make_data(TrainConfig(task="chars", text=text, train_chars=10_000), _seeds())


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


def test_task_stream_data_reads_one_endless_stream_per_row_and_restores_it():
    config = TrainConfig(task="recall", delay=5, bptt=3, batch_size=2, seq_len=10, eval_size=4, dtype="float32")
    data = make_data(config, _seeds())
    chunks = [data.next_batch() for _ in range(4)]
    assert all(state is None for *_, state in chunks)  # nothing carried yet
    x, y = (np.concatenate([chunk[i] for chunk in chunks], axis=1) for i in (0, 1))  # (2, 12, 1) each
    assert x.dtype == y.dtype == np.float32 and x.shape == (2, 12, 1)
    assert np.array_equal(y[:, 5:], x[:, :-5])  # y(t) = x(t - delay) across the chunk borders
    carried = np.full((1, 2, 7), 0.5, dtype=np.float32)
    data.carry(carried)
    arrays, meta = data.state_dict()
    assert set(arrays) == {"pending", "state.0"} and meta["state_parts"] == 1
    expected = data.next_batch()
    other = make_data(config, _seeds())
    other.load_state_dict(arrays, meta)
    again = other.next_batch()
    assert all(np.array_equal(a, b) for a, b in zip(again, expected))
    assert np.array_equal(again[2], carried)
    batches = list(data.eval_batches("valid"))  # 4 streams of 10 steps in chunks of 3, 3, 3, 1
    assert [x.shape for x, _ in batches] == [(4, 3, 1)] * 3 + [(4, 1, 1)]
    with pytest.raises(CheckpointError, match=r"expected data.pending float64\[2, 5, 1\], got none"):
        other.load_state_dict({k: v for k, v in arrays.items() if k != "pending"}, meta)
