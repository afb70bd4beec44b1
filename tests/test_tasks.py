"""Tests of numpy_rnn.tasks: shapes, seeding, the exact task definitions and their baselines."""
import bz2
import dataclasses
import gzip
import hashlib
import lzma
import math
from importlib import resources

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpy_rnn.tasks import (
    TASKS,
    AddingTask,
    AddingTaskHS,
    CharCorpus,
    CopyTask,
    MemoryTask,
    RecallTask,
    SineTask,
    empirical_baseline,
    make_task,
)

SMALL_TASKS = [
    MemoryTask(7),
    AddingTask(9),
    AddingTaskHS(13),
    CopyTask(5, n_symbols=3, copy_len=4),
    SineTask(6, horizon=2),
    RecallTask(11, delay=3),
]


# ----------------------------------------------------------------------------- definitions
def check_memory(task, x, y):
    assert np.all((x >= -1) & (x < 1))
    np.testing.assert_array_equal(y, x[:, 0, :])


def check_adding(task, x, y):
    T, half = task.seq_len, task.seq_len // 2
    values, marks = x[:, :, 0], x[:, :, 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(marks)) <= {0.0, 1.0}
    assert np.all(marks[:, :half].sum(axis=1) == 1)
    assert np.all(marks[:, half:].sum(axis=1) == 1)
    np.testing.assert_allclose(y[:, 0], (values * marks).sum(axis=1), rtol=1e-12)
    assert T == x.shape[1]


def check_adding_hs(task, x, y):
    T = task.seq_len
    values, marks = x[:, :, 0], x[:, :, 1]
    assert np.all((values >= -1) & (values < 1))
    assert set(np.unique(marks)) <= {-1.0, 0.0, 1.0}
    assert np.all((marks == 1).sum(axis=1) == 2)
    a, b = np.sort(np.nonzero(marks == 1)[1].reshape(-1, 2), axis=1).T
    window, candidates = min(10, T - 1), T // 2 - 1
    # X1 is in the window and X2 among the first `candidates` steps other than X1's
    assert np.all(((a < window) & (b <= candidates)) | ((b < window) & (a < candidates)))
    assert np.all(marks[:, -1] == -1)
    assert np.all((marks[:, 0] == -1) | (marks[:, 0] == 1))
    assert np.all(marks[:, 1:-1] >= 0)
    assert np.all(values[marks[:, 0] == 1, 0] == 0)
    np.testing.assert_allclose(y[:, 0], 0.5 + (values * (marks == 1)).sum(axis=1) / 4, rtol=1e-12)


def check_copy(task, x, y):
    S, L, T = task.n_symbols, task.copy_len, task.seq_len
    assert T == task.delay + 2 * L
    assert set(np.unique(x)) <= {0.0, 1.0} and np.all(x.sum(axis=2) == 1)
    ids = x.argmax(axis=2)
    assert np.all((ids[:, :L] >= 1) & (ids[:, :L] <= S))
    assert np.all(ids[:, L + task.delay - 1] == S + 1)
    rest = np.delete(ids, list(range(L)) + [L + task.delay - 1], axis=1)
    assert np.all(rest == 0)
    assert y.dtype == np.int64
    assert np.all(y[:, : T - L] == 0)
    np.testing.assert_array_equal(y[:, T - L :], ids[:, :L])


def check_sine(task, x, y):
    """A sine sampled at unit steps obeys s(t+1) = 2 cos(w) s(t) - s(t-1); extend it."""
    s = x[:, :, 0]
    assert np.all(np.abs(s) <= 1.5)
    if task.seq_len < 3:
        return
    c = np.sum(s[:, 1:-1] * (s[:, 2:] + s[:, :-2]), axis=1) / np.sum(s[:, 1:-1] ** 2, axis=1)
    frequency = np.arccos(np.clip(c / 2, -1, 1)) / (2 * np.pi)
    well_posed = np.sum(s[:, 1:-1] ** 2, axis=1) > 1e-3
    assert np.all((frequency[well_posed] > 0.02 - 1e-6) & (frequency[well_posed] < 0.1 + 1e-6))
    prev, cur = s[:, -2], s[:, -1]
    for _ in range(task.horizon):
        prev, cur = cur, c * cur - prev
    np.testing.assert_allclose(y[well_posed, 0], cur[well_posed], atol=1e-6)


def check_recall(task, x, y):
    assert np.all((x >= -1) & (x < 1)) and np.all((y >= -1) & (y < 1))
    np.testing.assert_array_equal(y[:, task.delay:], x[:, :-task.delay])


CHECKS = {
    MemoryTask: check_memory,
    AddingTask: check_adding,
    AddingTaskHS: check_adding_hs,
    CopyTask: check_copy,
    SineTask: check_sine,
    RecallTask: check_recall,
}


@pytest.mark.parametrize("task", SMALL_TASKS, ids=repr)
def test_shapes_dtypes_and_definition(task):
    x, y = task.sample(64, 0)
    assert x.dtype == np.float64
    assert x.shape == (64, task.seq_len, task.input_size)
    expected_y = {CopyTask: (64, task.seq_len), RecallTask: (64, task.seq_len, 1)}.get(type(task),
                                                                                    (64, task.output_size))
    assert y.shape == expected_y
    CHECKS[type(task)](task, x, y)


@pytest.mark.parametrize("task", SMALL_TASKS, ids=repr)
def test_same_seed_same_data_other_seed_other_data(task):
    x1, y1 = task.sample(8, 3)
    x2, y2 = task.sample(8, np.random.default_rng(3))
    x3, _ = task.sample(8, 4)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


@pytest.mark.parametrize("task", SMALL_TASKS, ids=repr)
def test_generator_advances_and_global_state_untouched(task):
    state = np.random.get_state()
    gen = np.random.default_rng(0)
    x1, _ = task.sample(4, gen)
    x2, _ = task.sample(4, gen)
    assert not np.array_equal(x1, x2)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1])


def test_n_equal_one_and_minimum_lengths():
    for task in [MemoryTask(1), AddingTask(2), AddingTaskHS(4), CopyTask(1, 1, 1), SineTask(1)]:
        x, y = task.sample(1, 0)
        assert x.shape == (1, task.seq_len, task.input_size)
        CHECKS[type(task)](task, x, y)


def test_adding_hs_zeroes_a_marked_first_step():
    task = AddingTaskHS(12)
    x, y = task.sample(2000, 1)
    first_marked = x[:, 0, 1] == 1
    assert 460 < first_marked.sum() < 660  # P = 1/10 + (9/10) / 5 = 0.28, mean 560, sd 20
    assert np.all(x[first_marked, 0, 0] == 0)


def test_copy_task_layout_example():
    task = CopyTask(delay=3, n_symbols=4, copy_len=2)
    x, y = task.sample(1, 0)
    ids = x[0].argmax(axis=1)
    s1, s2 = ids[:2]
    np.testing.assert_array_equal(ids, [s1, s2, 0, 0, 5, 0, 0])
    np.testing.assert_array_equal(y[0], [0, 0, 0, 0, 0, s1, s2])
    assert (task.input_size, task.output_size, task.seq_len) == (6, 5, 7)


# ----------------------------------------------------------------------------- baselines
def test_documented_baseline_values():
    assert MemoryTask(5).baseline_loss == pytest.approx(1 / 3)
    assert AddingTask(5).baseline_loss == pytest.approx(1 / 6)
    assert AddingTaskHS(200).baseline_loss == pytest.approx((0.9 + (1 - 0.9 / 99)) / 48)
    assert AddingTaskHS(200).baseline_loss < 1 / 24
    for delay in (1, 50, 1000):
        assert CopyTask(delay).baseline_loss == pytest.approx(10 * math.log(8) / (delay + 20))
    sine = SineTask(10)
    assert 0 < sine.baseline_loss < np.mean([0.5, 1.5]) ** 2 / 2


@pytest.mark.parametrize(
    "task, n",
    [(MemoryTask(3), 60_000), (AddingTask(6), 60_000), (AddingTaskHS(12), 200_000),
     (AddingTaskHS(30), 200_000), (SineTask(4), 100_000), (SineTask(3, horizon=7), 100_000)],
    ids=repr,
)
def test_mse_baseline_matches_its_trivial_predictor(task, n):
    x, y = task.sample(n, 2024)
    squared = ((task.baseline_predict(x) - y) ** 2).ravel()
    standard_error = squared.std() / math.sqrt(n)
    assert abs(empirical_baseline(task, x, y) - task.baseline_loss) < 5 * standard_error


def test_adding_hs_baseline_is_not_one_twenty_fourth():
    task = AddingTaskHS(12)
    x, y = task.sample(200_000, 7)
    empirical = empirical_baseline(task, x, y)
    assert abs(empirical - task.baseline_loss) < abs(empirical - 1 / 24) / 5


def test_copy_baseline_is_exact_on_samples():
    task = CopyTask(delay=15, n_symbols=8, copy_len=10)
    x, y = task.sample(500, 0)
    assert empirical_baseline(task, x, y) == pytest.approx(task.baseline_loss, rel=1e-12)
    probs = task.baseline_predict(x)
    np.testing.assert_allclose(probs.sum(axis=2), 1.0)


def test_baseline_predict_leaves_input_alone_and_checks_shape():
    task = MemoryTask(4)
    x, _ = task.sample(3, 0)
    x.flags.writeable = False
    task.baseline_predict(x)
    with pytest.raises(ValueError, match=r"MemoryTask: expected x of shape \(n, 4, 1\), got \(3, 5, 1\)"):
        task.baseline_predict(np.zeros((3, 5, 1)))


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: MemoryTask(0), ValueError, r"MemoryTask: expected seq_len >= 1, got 0"),
        (lambda: MemoryTask(2.0), TypeError, r"MemoryTask: expected seq_len to be an int >= 1, got float 2.0"),
        (lambda: MemoryTask(True), TypeError, r"expected seq_len to be an int >= 1, got bool True"),
        (lambda: AddingTask(1), ValueError, r"AddingTask: expected seq_len >= 2, got 1"),
        (lambda: AddingTaskHS(3), ValueError, r"AddingTaskHS: expected seq_len >= 4, got 3"),
        (lambda: CopyTask(0), ValueError, r"CopyTask: expected delay >= 1, got 0"),
        (lambda: CopyTask(5, n_symbols=0), ValueError, r"expected n_symbols >= 1, got 0"),
        (lambda: CopyTask(5, copy_len="3"), TypeError, r"expected copy_len to be an int >= 1, got str '3'"),
        (lambda: SineTask(5, horizon=0), ValueError, r"SineTask: expected horizon >= 1, got 0"),
        (lambda: MemoryTask(3).sample(0, 1), ValueError, r"MemoryTask: expected n >= 1, got 0"),
        (lambda: MemoryTask(3).sample(1.5, 1), TypeError, r"expected n to be an int >= 1, got float 1.5"),
        (lambda: MemoryTask(3).sample(2, "x"), TypeError,
         r"expected rng to be None, an int seed or a numpy.random.Generator, got str"),
        (lambda: MemoryTask(3).sample(2, np.random.RandomState(0)), TypeError, r"got RandomState"),
        (lambda: MemoryTask(3).sample(2, -1), ValueError, r"expected rng seed >= 0, got -1"),
        (lambda: make_task("nope"), ValueError,
         r"unknown task 'nope'; valid names: memory, adding, adding-hs, copy, sine"),
        (lambda: make_task(3), TypeError, r"make_task: expected the task name to be a str, got int"),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_registry_and_numpy_ints():
    assert set(TASKS) == {"memory", "adding", "adding-hs", "copy", "sine", "recall"}
    assert make_task("copy", delay=4) == CopyTask(4)
    task = make_task("memory", seq_len=np.int64(5))
    assert type(task.seq_len) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.seq_len = 6


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(TASKS)), length=st.integers(1, 40), n=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1))
def test_definitions_hold_for_any_length(name, length, n, seed):
    minimum = {"adding": 2, "adding-hs": 4}.get(name, 1)
    task = make_task(name, **({"delay": length} if name == "copy" else {"seq_len": max(length, minimum)}))
    x, y = task.sample(n, seed)
    assert x.shape == (n, task.seq_len, task.input_size)
    CHECKS[type(task)](task, x, y)
    assert task.baseline_loss >= 0


@settings(max_examples=30, deadline=None)
@given(delay=st.integers(1, 30), n_symbols=st.integers(1, 10), copy_len=st.integers(1, 12))
def test_copy_baseline_formula_for_any_size(delay, n_symbols, copy_len):
    task = CopyTask(delay, n_symbols, copy_len)
    x, y = task.sample(3, 0)
    check_copy(task, x, y)
    assert empirical_baseline(task, x, y) == pytest.approx(task.baseline_loss, abs=1e-12)


def test_recall_streams_read_in_chunks_are_one_stream():
    """Chunks of any lengths continue one stream: y(t) = x(t - delay) across every border, and
    the first delay targets are the values drawn by start (never shown)."""
    task, gen = RecallTask(5, delay=4), np.random.default_rng(0)
    pending = task.start(3, gen)
    first = pending.copy()
    xs, ys = [], []
    for length in (2, 7, 1, 3):
        given = pending.copy()
        x, y, pending_next = task.chunk(pending, length, gen)
        np.testing.assert_array_equal(pending, given)  # not modified
        pending = pending_next
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)
    np.testing.assert_array_equal(y[:, :4], first)
    np.testing.assert_array_equal(y[:, 4:], x[:, :-4])
    np.testing.assert_array_equal(pending, x[:, -4:])
    assert task.baseline_loss == pytest.approx(1 / 3)
    assert empirical_baseline(RecallTask(2000, delay=4), *RecallTask(2000, delay=4).sample(50, 1)) == pytest.approx(
        1 / 3, rel=0.02)
    with pytest.raises(ValueError, match=r"RecallTask: expected pending of shape \(n, 4, 1\), got \(3, 2, 1\)"):
        task.chunk(np.zeros((3, 2, 1)), 5, gen)
    with pytest.raises(ValueError, match="RecallTask: expected delay"):
        RecallTask(5, delay=0)


# ----------------------------------------------------------------------------- CharCorpus
TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 6


@pytest.fixture
def corpus():
    return CharCorpus.from_text(TEXT)


def test_vocab_encode_decode(corpus):
    assert corpus.vocab == "".join(sorted(set(TEXT)))
    assert corpus.input_size == corpus.output_size == len(corpus.vocab)
    ids = corpus.encode("the mat")
    assert ids.dtype == np.int64 and ids.shape == (7,)
    assert corpus.decode(ids) == "the mat"
    assert corpus.decode(corpus.ids) == TEXT
    assert corpus.decode(np.array([], dtype=np.int64)) == ""


def test_encode_decode_errors(corpus):
    with pytest.raises(ValueError, match=r"characters not in the vocabulary: \['X', 'z'\]"):
        corpus.encode("zX")
    with pytest.raises(TypeError, match=r"CharCorpus.encode: expected a str, got bytes"):
        corpus.encode(b"the")
    with pytest.raises(ValueError, match=rf"expected ids in \[0, {len(corpus.vocab)}\)"):
        corpus.decode([0, 99])
    with pytest.raises(TypeError, match=r"expected integer ids, got dtype float64"):
        corpus.decode(np.array([0.0]))
    with pytest.raises(ValueError, match=r"expected ids of shape \(N,\), got \(1, 2\)"):
        corpus.decode(np.array([[0, 1]]))


def test_from_text_and_file_errors(tmp_path):
    with pytest.raises(ValueError, match="expected a non-empty text"):
        CharCorpus.from_text("")
    with pytest.raises(TypeError, match="expected text to be a str, got int"):
        CharCorpus.from_text(5)
    with pytest.raises(ValueError, match="expected vocab of distinct characters"):
        CharCorpus.from_text("ab", vocab="abb")
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['c'\]"):
        CharCorpus.from_text("abc", vocab="ab")
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match="no such file: .*missing.txt"):
        CharCorpus.from_file(missing)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt' is empty"):
        CharCorpus.from_file(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.txt' is not valid UTF-8"):
        CharCorpus.from_file(str(latin))


def test_from_file_reads_utf8(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("h\u00e9llo w\u00f6rld\n", encoding="utf-8")
    corpus = CharCorpus.from_file(path)
    assert corpus.text == "h\u00e9llo w\u00f6rld\n"
    assert "\u00e9" in corpus.vocab


@pytest.fixture(scope="module")
def shakespeare():
    return CharCorpus.builtin()


def test_builtin_text_is_tiny_shakespeare(shakespeare):
    raw = shakespeare.text.encode("utf-8")
    assert len(raw) == len(shakespeare) == CharCorpus.BUILTIN_SIZE == 1_115_394
    assert hashlib.sha256(raw).hexdigest() == CharCorpus.BUILTIN_SHA256
    assert shakespeare.text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    assert len(shakespeare.vocab) == 65
    assert shakespeare.baseline_loss < shakespeare.uniform_loss == pytest.approx(math.log(65))


def test_builtin_provenance_states_size_and_checksum():
    provenance = resources.files("numpy_rnn").joinpath("data", "README.md").read_text("utf-8")
    assert CharCorpus.BUILTIN in provenance and CharCorpus.BUILTIN_SHA256 in provenance
    assert f"{CharCorpus.BUILTIN_SIZE:,} bytes" in provenance and "public domain" in provenance


def test_builtin_refuses_a_damaged_text(monkeypatch):
    monkeypatch.setattr(CharCorpus, "BUILTIN_SHA256", "0" * 64)
    with pytest.raises(ValueError, match=r"CharCorpus.builtin: the shipped text .* is damaged: expected "
                                         r"1115394 bytes with SHA-256 0{64}, got 1115394 bytes"):
        CharCorpus.builtin()


@pytest.mark.parametrize("suffix, compress", [(".gz", gzip.compress), (".xz", lzma.compress),
                                              (".bz2", bz2.compress), (".GZ", gzip.compress)])
def test_from_file_reads_compressed_text(tmp_path, suffix, compress):
    path = tmp_path / f"text.txt{suffix}"
    path.write_bytes(compress("h\u00e9llo\nw\u00f6rld\n".encode("utf-8")))
    assert CharCorpus.from_file(path).text == "h\u00e9llo\nw\u00f6rld\n"


@pytest.mark.parametrize("suffix, compress", [(".gz", gzip.compress), (".xz", lzma.compress),
                                              (".bz2", bz2.compress)])
def test_from_file_refuses_damaged_or_empty_compressed_text(tmp_path, suffix, compress):
    data = compress(b"some text, long enough to be cut short" * 10)
    damaged = tmp_path / f"damaged{suffix}"
    damaged.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"CharCorpus.from_file: '.*damaged{suffix}' is not a valid {suffix} file"):
        CharCorpus.from_file(damaged)
    plain = tmp_path / f"plain{suffix}"
    plain.write_bytes(b"not compressed at all")
    with pytest.raises(ValueError, match=rf"'.*plain{suffix}' is not a valid {suffix} file"):
        CharCorpus.from_file(plain)
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(compress(b""))
    with pytest.raises(ValueError, match=rf"empty{suffix}' is empty"):
        CharCorpus.from_file(empty)


def test_batches_are_shifted_contiguous_disjoint_windows(corpus):
    batches = list(corpus.batches(3, 10, 0))
    assert len(batches) >= 2
    for x, y in batches:
        assert x.shape == y.shape == (3, 10) and x.dtype == np.int64
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
        for row_x, row_y in zip(x, y):
            assert corpus.decode(np.append(row_x, row_y[-1])) in corpus.text
    again = [x for x, _ in corpus.batches(3, 10, 0)]
    other = [x for x, _ in corpus.batches(3, 10, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(again, [x for x, _ in batches]))
    assert not all(np.array_equal(a, b) for a, b in zip(other, again))


def test_batches_cover_each_window_once():
    corpus = CharCorpus.from_text("".join(chr(65 + i % 26) + chr(97 + i // 26) for i in range(300)))
    x = np.concatenate([x for x, _ in corpus.batches(4, 7, 5)])
    starts = sorted(corpus.text.find(corpus.decode(row)) for row in x)
    assert len(set(starts)) == len(starts)
    assert all(b - a >= 7 for a, b in zip(starts, starts[1:]))


def test_batches_errors(corpus):
    with pytest.raises(ValueError, match=r"too short for batch_size=100 windows of seq_len=10"):
        corpus.batches(100, 10, 0)
    with pytest.raises(ValueError, match=r"CharCorpus.batches: expected seq_len >= 1, got 0"):
        corpus.batches(2, 0, 0)


def test_stream(corpus):
    s = corpus.stream(4)
    M = len(TEXT) // 4
    assert s.shape == (4, M)
    for b in range(4):
        np.testing.assert_array_equal(s[b], corpus.ids[b * M : (b + 1) * M])
    with pytest.raises(ValueError, match="too short for batch_size=1000"):
        corpus.stream(1000)


def test_split(corpus):
    train, valid, test = corpus.split(0.25, 0.125)
    N = len(TEXT)
    assert (len(train), len(valid), len(test)) == (int(N * 0.625), int(N * 0.875) - int(N * 0.625),
                                                    N - int(N * 0.875))
    assert train.text + valid.text + test.text == corpus.text
    assert train.vocab == valid.vocab == test.vocab == corpus.vocab
    with pytest.raises(ValueError, match=r"expected valid_fraction \+ test_fraction < 1, got 0.5 \+ 0.5"):
        corpus.split(0.5, 0.5)
    with pytest.raises(ValueError, match=r"expected valid_fraction finite and in \(0.0, inf\), got 0"):
        corpus.split(0)
    with pytest.raises(ValueError, match=r"expected test_fraction finite and in \(0.0, inf\), got -0.1"):
        corpus.split(0.1, -0.1)
    with pytest.raises(ValueError, match="leave an empty part of a text of 3 characters"):
        CharCorpus.from_text("abc").split(0.01, 0.01)


def test_default_split_of_tiny_shakespeare_is_nanogpts(shakespeare):
    train, valid, test = shakespeare.split()
    # nanoGPT's shakespeare_char: train.bin 1,003,854 characters, val.bin 111,540 (the last 10%)
    assert (len(train), len(valid), len(test)) == (1_003_854, 55_770, 55_770)
    assert valid.text + test.text == shakespeare.text[-111_540:]
    assert train.text == shakespeare.text[: int(len(shakespeare) * 0.9)]
    np.testing.assert_array_equal(np.concatenate([train.ids, valid.ids, test.ids]), shakespeare.ids)


def test_unigram_baseline_matches_empirical(shakespeare):
    s = shakespeare.stream(1)
    assert empirical_baseline(shakespeare, s[:, :-1], s[:, 1:]) == pytest.approx(shakespeare.baseline_loss, abs=1e-5)
    p = np.bincount(shakespeare.ids) / len(shakespeare)
    assert shakespeare.baseline_loss == pytest.approx(-np.sum(p * np.log(p)))


@pytest.mark.parametrize("suffix, compress", [("", bytes), (".gz", gzip.compress), (".xz", lzma.compress),
                                              (".bz2", bz2.compress)])
def test_from_file_stops_at_its_size_limit(tmp_path, monkeypatch, suffix, compress):
    """A text (or a decompression bomb) over MAX_TEXT_BYTES is refused after reading at most that much."""
    monkeypatch.setattr(CharCorpus, "MAX_TEXT_BYTES", 1000)
    path = tmp_path / f"big.txt{suffix}"
    path.write_bytes(compress(b"a" * 5000))
    with pytest.raises(ValueError, match="more than the limit of 1000"):
        CharCorpus.from_file(path)
    path.write_bytes(compress(b"a" * 1000))
    assert len(CharCorpus.from_file(path)) == 1000
