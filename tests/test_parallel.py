"""Batch threads: the split of a layer's time loop over batch parts gives the unsplit results,
pins the BLAS inside the parts only, and is chosen as documented."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from numpy_rnn import GRU, LSTM, SimpleRNN, parallel
from numpy_rnn.cells import ElmanCell
from numpy_rnn.gradcheck import check_layer
from numpy_rnn.layers import PartCaches

B, T, D, H = 24, 9, 5, 7  # all different; B splits into 2 or 3 parts of >= MIN_ROWS rows
LAYERS = {
    "rnn-tanh": (SimpleRNN, {}),
    "rnn-relu": (SimpleRNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, {}),
    "lstm-peepholes": (LSTM, {"peepholes": True}),
    "lstm-proj": (LSTM, {"proj_size": 4}),  # h of width 4, c of width H
    "gru": (GRU, {}),
    "gru-reset-before": (GRU, {"reset_after": False}),
}


@pytest.fixture(autouse=True)
def any_step_splits(monkeypatch):
    """Split even the small steps of these tests; restore the default setting afterwards."""
    monkeypatch.setattr(parallel, "MIN_STEP_WORK", 0)
    yield
    parallel.set_batch_threads(parallel.DEFAULT_THREADS)


def run(layer, x, state, d_out, d_state, threads):
    parallel.set_batch_threads(threads)
    layer.zero_grad()
    out, state_n = layer.forward(x, state)
    dx, d_state0 = layer.backward(d_out, d_state)
    return [out, *_parts(state_n), dx, *_parts(d_state0), *(g.copy() for g in layer.grads.values())]


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


def upstream(layer, rng, batch=B):
    out_width = layer.num_directions * layer.h_size
    shapes = [(layer.num_layers * layer.num_directions, batch, width) for width in layer.cell.state_widths]
    state, d_state = (tuple(rng.standard_normal(shape) for shape in shapes) for _ in range(2))
    if len(shapes) == 1:
        state, d_state = state[0], d_state[0]
    return rng.standard_normal((batch, T, D)), state, rng.standard_normal((batch, T, out_width)), d_state


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("threads", [2, 3])
def test_parts_give_the_unsplit_results(kind, threads, rng):
    cls, options = LAYERS[kind]
    layer = cls(D, H, 2, bidirectional=True, rng=3, **options)
    x, state, d_out, d_state = upstream(layer, rng)
    whole = run(layer, x, state, d_out, d_state, 1)
    parts = run(layer, x, state, d_out, d_state, threads)
    assert isinstance(layer._cache[0][0][1][1], PartCaches)
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru"])
def test_gradient_check_passes_on_parts(kind, rng):
    cls, options = LAYERS[kind]
    parallel.set_batch_threads(2)
    layer = cls(D, H, rng=5, **options)
    report = check_layer(layer, rng.standard_normal((16, 6, D)))
    assert isinstance(layer._cache[0][0][1][1], PartCaches)
    assert report.passed, str(report)


def test_recorded_state_grads_and_step_caches_join_the_parts(rng):
    layer = LSTM(D, H, rng=2)
    layer.record_state_grads = True
    x, state, d_out, d_state = upstream(layer, rng)
    seen = {}
    for threads in (1, 2):
        run(layer, x, state, d_out, d_state, threads)
        seen[threads] = (layer.state_grads, layer.traces()[0].caches)
    (grads1, caches1), (grads2, caches2) = seen[1], seen[2]
    for a, b in zip(grads1["l0"], grads2["l0"]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
    assert len(caches2) == T
    for field1, field2 in zip(caches1[4], caches2[4]):
        np.testing.assert_allclose(field2, field1, rtol=1e-12)
    assert [len(step.i) for step in caches2[2:4]] == [B, B]


class _OwnForwardElman(ElmanCell):
    """A fast forward of its own and no backward_sequence written with it: BPTT runs the steps
    over its caches, per part."""

    def forward_sequence(self, p, xw, state0):
        return super().forward_sequence(p, xw, state0)


def test_a_forward_only_fast_path_backpropagates_per_part(rng):
    layer = SimpleRNN(D, H, rng=1, cell=_OwnForwardElman)
    x, state, d_out, d_state = upstream(layer, rng)
    whole = run(layer, x, state, d_out, d_state, 1)
    parts = run(layer, x, state, d_out, d_state, 2)
    assert isinstance(layer._cache[0][0][1][1], PartCaches)
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)


def test_part_rows_are_near_equal_blocks_covering_the_batch(monkeypatch):
    parallel.set_batch_threads(3)
    rows = parallel.part_rows(26, 10**6)
    assert [(r.start, r.stop) for r in rows] == [(0, 8), (8, 17), (17, 26)]
    assert len(parallel.part_rows(2 * parallel.MIN_ROWS - 1, 10**6)) == 1  # too few sequences for two parts
    monkeypatch.setattr(parallel, "MIN_STEP_WORK", 100)
    assert parallel.part_rows(64, 99) == [slice(0, 64)]  # too little work per step


def test_parts_pin_the_blas_to_one_thread_and_restore_it():
    def blas_threads(_):
        return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")

    before = blas_threads(None)
    assert parallel.map_parts(blas_threads, [0, 1]) == [1, 1]
    assert blas_threads(None) == before
    assert parallel.map_parts(lambda part: part * 10, [1, 2, 3]) == [10, 20, 30]


def test_an_error_in_a_part_reaches_the_caller():
    def fail_on_second(part):
        if part == 2:
            raise ArithmeticError("part 2")
        return part

    with pytest.raises(ArithmeticError, match="part 2"):
        parallel.map_parts(fail_on_second, [1, 2])


def test_by_default_one_part_whatever_the_blas_threads(rng):
    assert parallel.batch_threads() == 1 and parallel.part_rows(64, 10**6) == [slice(0, 64)]
    layer = LSTM(D, H, rng=0)
    layer.forward(rng.standard_normal((B, T, D)))
    assert not isinstance(layer._cache[0][0][1][1], PartCaches)


def test_automatic_setting_follows_the_blas_threads():
    parallel.set_batch_threads(None)
    blas = max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")
    assert parallel.batch_threads() == blas


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match=r"set_batch_threads: expected threads to be None or an int >= 1, got"):
        parallel.set_batch_threads(bad)


def test_without_threadpoolctl_one_part_and_a_clear_error_for_more(monkeypatch):
    monkeypatch.setattr(parallel, "_controller", False)
    parallel.set_batch_threads(None)
    assert parallel.batch_threads() == 1
    with pytest.raises(ImportError, match="needs threadpoolctl"):
        parallel.set_batch_threads(2)
