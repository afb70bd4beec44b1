"""Tests of numpy_rnn.checkpoint: exact round trips, rejection of every damaged file, safe saves."""
import errno
import hashlib
import json
import os
import pickle
import re
import stat
import struct
import tracemalloc

import numpy as np
import pytest

from numpy_rnn.checkpoint import (
    FORMAT_VERSION,
    MAGIC,
    MAX_HEADER_BYTES,
    MAX_JSON_DEPTH,
    CheckpointError,
    check_schema,
    load_checkpoint,
    save_checkpoint,
)


def make_arrays():
    return {
        "layers.0.W": np.arange(6, dtype=np.float64).reshape(2, 3) / 7,
        "layers.0.b": np.array([0.1, -2.5e-300, np.inf, np.nan], dtype=np.float32),
        "step_ids": np.array([-(2**62), 0, 2**62], dtype=np.int64),
        "mask": np.array([[True, False], [False, True]]),
    }


def make_meta():
    return {
        "config": {"hidden_size": 8, "lr": 0.1, "cell": "lstm", "layers": [1, 2]},
        "step": 17,
        "rng": np.random.default_rng(5).bit_generator.state,
        "position": None,
        "note": "caf\u00e9 \u2713",
    }


def assert_bit_exact(loaded, original):
    assert list(loaded) == list(original)
    for name, array in original.items():
        assert loaded[name].dtype == array.dtype
        assert loaded[name].shape == array.shape
        assert loaded[name].tobytes() == array.tobytes()


@pytest.fixture
def saved(tmp_path):
    """A small checkpoint written to disk: (path, arrays, meta)."""
    path = tmp_path / "model.ckpt"
    arrays, meta = make_arrays(), make_meta()
    save_checkpoint(path, arrays, meta)
    return path, arrays, meta


def write_raw(path, header, data=b"", version=FORMAT_VERSION, magic=MAGIC):
    """Write a file in the documented format with a valid checksum, from raw parts."""
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = struct.pack("<8sIQ", magic, version, len(header_bytes)) + header_bytes + data
    path.write_bytes(body + hashlib.sha256(body).digest())


# ----------------------------------------------------------------------------- round trips
def test_round_trip_is_bit_exact(saved):
    path, arrays, meta = saved
    loaded, loaded_meta = load_checkpoint(path)
    assert_bit_exact(loaded, arrays)
    assert loaded_meta == meta
    assert all(a.flags.writeable and a.flags.c_contiguous for a in loaded.values())


def test_round_trip_of_edge_arrays(tmp_path):
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    arrays = {
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "strided": base[:, ::2],
        "big_endian": np.arange(3, dtype=">i4"),
        "complex": np.array([1 + 2j], dtype=np.complex64),
        "half": np.array([1.5], dtype=np.float16),
        "bytes": np.array([0, 255], dtype=np.uint8),
    }
    before = {k: (v.copy(), v.dtype, v.flags.c_contiguous) for k, v in arrays.items()}
    save_checkpoint(str(tmp_path / "c"), arrays, {})
    loaded, meta = load_checkpoint(tmp_path / "c")
    assert meta == {}
    for name, (copy, dtype, contiguous) in before.items():
        np.testing.assert_array_equal(loaded[name], copy)
        assert loaded[name].shape == copy.shape
        assert loaded[name].dtype == dtype.newbyteorder("=")
        assert arrays[name].dtype == dtype and arrays[name].flags.c_contiguous == contiguous
        np.testing.assert_array_equal(arrays[name], copy)


def test_generator_state_restores_the_stream(tmp_path):
    gen = np.random.default_rng(11)
    gen.normal(size=5)
    save_checkpoint(tmp_path / "c", {}, {"rng": gen.bit_generator.state})
    _, meta = load_checkpoint(tmp_path / "c")
    restored = np.random.Generator(np.random.PCG64())
    restored.bit_generator.state = meta["rng"]
    np.testing.assert_array_equal(restored.normal(size=4), gen.normal(size=4))


def test_save_replaces_previous_and_leaves_no_temp(saved):
    path, _, _ = saved
    save_checkpoint(path, {"x": np.ones(2)}, {"step": 2})
    arrays, meta = load_checkpoint(path)
    assert list(arrays) == ["x"] and meta == {"step": 2}
    assert os.listdir(path.parent) == [path.name]


def test_load_never_unpickles(saved, monkeypatch):
    path, arrays, _ = saved

    def forbidden(*args, **kwargs):
        raise AssertionError("load_checkpoint must not unpickle or np.load")

    for module, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (np, "load")]:
        monkeypatch.setattr(module, name, forbidden)
    assert_bit_exact(load_checkpoint(path)[0], arrays)


# ----------------------------------------------------------------------------- damaged files
def test_every_truncation_is_rejected(saved):
    path, _, _ = saved
    data = path.read_bytes()
    assert len(data) < 2000
    for size in range(len(data)):
        path.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match="model.ckpt"):
            load_checkpoint(path)


@pytest.mark.parametrize("mask", [0x01, 0xFF])
def test_every_byte_corruption_is_detected(saved, mask):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    for i in range(len(data)):
        data[i] ^= mask
        path.write_bytes(bytes(data))
        data[i] ^= mask
        with pytest.raises(CheckpointError, match="model.ckpt"):
            load_checkpoint(path)


def test_trailing_bytes_are_rejected(saved):
    path, _, _ = saved
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        load_checkpoint(path)


class CreatesFile:
    """Unpickling this object opens (so creates) the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_refused_without_running(tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(CreatesFile(proof))).close()
    assert proof.exists()  # the payload really runs code when unpickled

    marker = tmp_path / "marker"
    path = tmp_path / "model.ckpt"
    path.write_bytes(pickle.dumps(CreatesFile(marker)))
    with pytest.raises(CheckpointError, match=r"model.ckpt' is not a numpy_rnn checkpoint"):
        load_checkpoint(path)
    np.save(tmp_path / "obj.npy", np.array([CreatesFile(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="not a numpy_rnn checkpoint"):
        load_checkpoint(tmp_path / "obj.npy")
    assert not marker.exists()


F8 = {"name": "w", "dtype": "<f8", "shape": [2], "offset": 0, "nbytes": 16}


@pytest.mark.parametrize(
    "header, data, message",
    [
        ({"arrays": [F8], "meta": {}}, bytes(8), r"array 'w' .* expects 16 bytes"),
        ({"arrays": [F8], "meta": {}}, bytes(24), r"data section has 24 bytes, the header describes 16"),
        ({"arrays": [{**F8, "nbytes": 8}], "meta": {}}, bytes(16), r"expects 16 bytes .* header says 8"),
        ({"arrays": [{**F8, "offset": 8}], "meta": {}}, bytes(24), r"at offset 0 .* header says 16 at 8"),
        ({"arrays": [F8, F8], "meta": {}}, bytes(32), r"duplicate array names"),
        ({"arrays": [{**F8, "dtype": "|O"}], "meta": {}}, bytes(16), r"invalid array entry"),
        ({"arrays": [{**F8, "dtype": "<U1"}], "meta": {}}, bytes(16), r"invalid array entry"),
        ({"arrays": [{**F8, "shape": [-2]}], "meta": {}}, bytes(16), r"invalid array entry"),
        ({"arrays": [{**F8, "shape": [2.0]}], "meta": {}}, bytes(16), r"invalid array entry"),
        ({"arrays": [{**F8, "shape": 2}], "meta": {}}, bytes(16), r"invalid array entry"),
        ({"arrays": [{**F8, "name": ""}], "meta": {}}, bytes(16), r"invalid array entry"),
        ({"arrays": [{**F8, "code": "x"}], "meta": {}}, bytes(16), r"expected array entries with keys"),
        ({"arrays": [], "meta": {}, "x": 1}, b"", r"header object with keys 'arrays' and 'meta'"),
        ({"arrays": [], "meta": []}, b"", r"'meta' an object"),
        ([], b"", r"header object"),
        (b"{not json", b"", r"header is not valid UTF-8 JSON"),
        (b"\xff\xfe", b"", r"header is not valid UTF-8 JSON"),
        ({"arrays": [{**F8, "dtype": "|b1", "nbytes": 2}], "meta": {}}, b"\x01\x02",
         r"bool array 'w' holds bytes other than 0 and 1"),
    ],
)
def test_inconsistent_header_with_valid_checksum_is_rejected(tmp_path, header, data, message):
    path = tmp_path / "crafted.ckpt"
    write_raw(path, header, data)
    with pytest.raises(CheckpointError, match=rf"crafted.ckpt'?: .*{message}"):
        load_checkpoint(path)


def test_wrong_version_and_header_length(tmp_path):
    path = tmp_path / "crafted.ckpt"
    write_raw(path, {"arrays": [], "meta": {}}, version=2)
    with pytest.raises(CheckpointError, match=r"crafted.ckpt' has format version 2; .* reads version 1"):
        load_checkpoint(path)
    body = struct.pack("<8sIQ", MAGIC, FORMAT_VERSION, 10**6) + b"{}"
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(CheckpointError, match="header length 1000000 runs past the end"):
        load_checkpoint(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint '.*nothing.ckpt': \[Errno 2\]"):
        load_checkpoint(tmp_path / "nothing.ckpt")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path)


# ----------------------------------------------------------------------------- expected
def test_expected_exact_match(saved):
    path, arrays, _ = saved
    expected = {name: (a.shape, a.dtype) for name, a in arrays.items()}
    assert_bit_exact(load_checkpoint(path, expected)[0], arrays)
    expected["layers.0.W"] = ([2, 3], "float64")
    load_checkpoint(path, expected)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e.pop("mask"), r"unexpected 'mask'"),
        (lambda e: e.update(extra=((1,), np.float64)), r"missing 'extra'"),
        (lambda e: e.update(mask=((4,), bool)), r"'mask': expected shape \(4,\) dtype bool, got shape \(2, 2\)"),
        (lambda e: e.update(step_ids=((3,), np.int32)), r"'step_ids': expected shape \(3,\) dtype int32"),
    ],
)
def test_expected_mismatch_is_rejected(saved, change, message):
    path, arrays, _ = saved
    expected = {name: (a.shape, a.dtype) for name, a in arrays.items()}
    change(expected)
    with pytest.raises(CheckpointError, match=rf"model.ckpt' does not match expected: .*{message}"):
        load_checkpoint(path, expected)


# ----------------------------------------------------------------------------- failing saves
def assert_previous_intact(path, arrays_in_memory, originals):
    loaded, meta = load_checkpoint(path)
    assert_bit_exact(loaded, make_arrays())
    assert meta == make_meta()
    assert os.listdir(path.parent) == [path.name]
    assert_bit_exact(arrays_in_memory, originals)


def new_arrays():
    arrays = {"layers.0.W": np.full((3, 3), 9.0), "mask": np.ones(4, dtype=bool)}
    return arrays, {k: v.copy() for k, v in arrays.items()}


def fail_with(error):
    def fail(*args, **kwargs):
        raise error

    return fail


@pytest.mark.parametrize(
    "target, error, message",
    [
        ("replace", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), r"\[Errno 28\] No space left"),
        ("replace", PermissionError(errno.EACCES, os.strerror(errno.EACCES)), r"\[Errno 13\]"),
        ("fsync", OSError(errno.EIO, os.strerror(errno.EIO)), r"\[Errno 5\] Input/output error"),
    ],
)
def test_os_error_during_save_keeps_previous(saved, monkeypatch, target, error, message):
    path, _, _ = saved
    arrays, originals = new_arrays()
    monkeypatch.setattr(os, target, fail_with(error))
    with pytest.raises(CheckpointError, match=rf"cannot save checkpoint '.*model.ckpt': {message}"):
        save_checkpoint(path, arrays, {"step": 99})
    monkeypatch.undo()
    assert_previous_intact(path, arrays, originals)


def test_read_only_directory_keeps_previous(saved, monkeypatch):
    """Running as root ignores chmod, so the read-only directory is simulated at os.open."""
    path, _, _ = saved
    arrays, originals = new_arrays()
    real_open = os.open

    def read_only_open(file, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), file)
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    with pytest.raises(CheckpointError, match=r"cannot save checkpoint '.*model.ckpt': \[Errno 13\] Permission denied"):
        save_checkpoint(path, arrays, {})
    monkeypatch.undo()
    assert_previous_intact(path, arrays, originals)


class FillsUp:
    """A file wrapper that accepts ``room`` bytes, writes part of the next chunk, then fails."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, chunk):
        chunk = bytes(chunk)
        if len(chunk) > self.room:
            self.f.write(chunk[: self.room])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(chunk)
        return self.f.write(chunk)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("room", [0, 30, 100])
def test_disk_full_mid_write_keeps_previous(saved, monkeypatch, room):
    path, _, _ = saved
    arrays, originals = new_arrays()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: FillsUp(real_fdopen(*a, **k), room))
    with pytest.raises(CheckpointError, match=r"model.ckpt': \[Errno 28\] No space left on device"):
        save_checkpoint(path, arrays, {})
    monkeypatch.undo()
    assert_previous_intact(path, arrays, originals)


def test_interrupt_during_save_cleans_up_and_propagates(saved, monkeypatch):
    path, _, _ = saved
    arrays, originals = new_arrays()
    monkeypatch.setattr(os, "replace", fail_with(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, arrays, {})
    monkeypatch.undo()
    assert_previous_intact(path, arrays, originals)


def test_unwritable_destinations(tmp_path):
    with pytest.raises(CheckpointError, match=r"cannot save checkpoint '.*no_such_dir.*c.ckpt': \[Errno 2\]"):
        save_checkpoint(tmp_path / "no_such_dir" / "c.ckpt", {"x": np.ones(1)}, {})
    (tmp_path / "a_dir").mkdir()
    with pytest.raises(CheckpointError, match=r"cannot save checkpoint '.*a_dir'"):
        save_checkpoint(tmp_path / "a_dir", {"x": np.ones(1)}, {})
    assert os.listdir(tmp_path) == ["a_dir"] and os.listdir(tmp_path / "a_dir") == []


def test_save_is_fsynced_then_renamed_then_directory_fsynced(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        assert os.path.dirname(src) == os.path.dirname(dst) == str(tmp_path)
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_checkpoint(tmp_path / "c", {"x": np.ones(2)}, {})
    assert events == ["fsync file", "replace", "fsync dir"]


# ----------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "arrays, meta, error, message",
    [
        ({"x": np.array([object()])}, {}, TypeError, r"arrays\['x'\] of a bool, integer, float or complex dtype, got object"),
        ({"x": np.array(["a"])}, {}, TypeError, r"complex dtype, got <U1"),
        ({"x": np.array([1], dtype="datetime64[s]")}, {}, TypeError, r"got datetime64\[s\]"),
        ({"x": np.zeros(1, dtype=[("a", "<f8")])}, {}, TypeError, r"complex dtype, got \[\('a', '<f8'\)\]"),
        ({"x": [1.0]}, {}, TypeError, r"expected arrays\['x'\] to be a numpy.ndarray, got list"),
        ({1: np.ones(1)}, {}, TypeError, r"expected array names to be str, got int"),
        ({"": np.ones(1)}, {}, ValueError, r"expected non-empty array names, got ''"),
        ([np.ones(1)], {}, TypeError, r"expected arrays to be a dict, got list"),
        ({}, [], TypeError, r"expected meta to be a dict, got list"),
        ({}, {"step": np.int64(3)}, TypeError, r"expected meta to be JSON data, got .*int64"),
        ({}, {"shape": (2, 3)}, TypeError, r"meta to survive JSON unchanged"),
        ({}, {"by_step": {1: 0.5}}, TypeError, r"meta to survive JSON unchanged"),
        ({}, {"loss": float("nan")}, ValueError, r"expected meta to be JSON data"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path, arrays, meta, error, message):
    with pytest.raises(error, match=message):
        save_checkpoint(tmp_path / "c", arrays, meta)
    assert os.listdir(tmp_path) == []


def test_bad_path_and_expected_types(saved):
    path, _, _ = saved
    with pytest.raises(TypeError, match="save_checkpoint: expected path to be a str or os.PathLike, got int"):
        save_checkpoint(3, {}, {})
    with pytest.raises(TypeError, match="load_checkpoint: expected path to be a str or os.PathLike, got NoneType"):
        load_checkpoint(None)
    with pytest.raises(TypeError, match="expected `expected` to be a dict of name -> \\(shape, dtype\\), got list"):
        load_checkpoint(path, [])


# ----------------------------------------------------------------------------- limits
def test_save_refuses_what_load_would_refuse(tmp_path):
    deep = []
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    with pytest.raises(ValueError, match=rf"expected meta nested at most {MAX_JSON_DEPTH - 1} levels deep"):
        save_checkpoint(tmp_path / "c", {}, {"x": deep})
    circular = []
    circular.append(circular)
    with pytest.raises(ValueError, match="nested at most"):
        save_checkpoint(tmp_path / "c", {}, {"x": circular})
    with pytest.raises(ValueError, match=rf"expected a header of at most {MAX_HEADER_BYTES} bytes"):
        save_checkpoint(tmp_path / "c", {}, {"x": "a" * MAX_HEADER_BYTES})
    assert os.listdir(tmp_path) == []
    nested = []  # one level
    for _ in range(MAX_JSON_DEPTH - 3):  # at the limit, with the meta object and the header's
        nested = [nested]
    save_checkpoint(tmp_path / "c", {}, {"x": nested})
    assert load_checkpoint(tmp_path / "c")[1] == {"x": nested}


def test_header_within_the_limit_loads(tmp_path):
    history = [{"step": i, "val_loss": 0.5 + i * 1e-9} for i in range(50_000)]  # some 2 MB of JSON
    save_checkpoint(tmp_path / "c", {}, {"history": history})
    assert load_checkpoint(tmp_path / "c")[1]["history"] == history


# ----------------------------------------------------------------------------- metadata form
SCHEMA = {"step": int, "history": [{"step": int, "val_loss": (float, None)}],
          "config": {str: (int, float, str, bool, None, {str: str})}, "note?": str}
GOOD_META = {"step": 3, "history": [{"step": 1, "val_loss": None}, {"step": 2, "val_loss": 1}],
             "config": {"cell": "lstm", "lr": 0.1, "init": {"R": "identity"}, "text": None}}


def test_check_schema_accepts_the_documented_forms():
    check_schema("p", GOOD_META, SCHEMA)
    check_schema("p", {**GOOD_META, "note": "x"}, SCHEMA)
    check_schema("p", [[1, 2], []], [[int]], where="x")


@pytest.mark.parametrize("change, message", [
    ({"step": "fifty"}, r"meta\['step'\]: expected int, got str 'fifty'"),
    ({"step": True}, r"meta\['step'\]: expected int, got bool True"),
    ({"step": 3.0}, r"meta\['step'\]: expected int, got float 3.0"),
    ({"history": {}}, r"meta\['history'\]: expected list, got dict \{\}"),
    ({"history": [{"step": 1, "val_loss": "low"}]}, r"meta\['history'\]\[0\]\['val_loss'\]: expected float or null, got str"),
    ({"history": [{"step": 1}]}, r"meta\['history'\]\[0\]: missing key 'val_loss'"),
    ({"config": {"init": {"R": 3}}}, r"meta\['config'\]\['init'\]\['R'\]: expected str, got int 3"),
    ({"config": {"x": [1]}}, r"meta\['config'\]\['x'\]: expected int or float or str or bool or null or object, got list"),
    ({"note": None}, r"meta\['note'\]: expected str, got null"),
    ({"extra": 1}, r"meta: unexpected key 'extra'"),
    ({"step": "x" * 1000}, r"meta\['step'\]: expected int, got str 'x+\.\.\.$"),
])
def test_check_schema_names_the_place_and_the_value(change, message):
    with pytest.raises(CheckpointError, match=rf"^checkpoint 'run/c.ckpt': {message}"):
        check_schema("run/c.ckpt", {**GOOD_META, **change}, SCHEMA)
    with pytest.raises(CheckpointError, match=r"meta: missing key 'config'"):
        check_schema("p", {"step": 1, "history": []}, SCHEMA)


def test_check_schema_refuses_a_bad_schema():
    with pytest.raises(TypeError, match="check_schema: expected a schema of JSON types"):
        check_schema("p", 1, np.int64)


# ----------------------------------------------------------------------------- hostile files
# Each builds the bytes of a file with a VALID SHA-256 (or, last, a damaged one) and the text
# its one-line refusal must contain. Loading must refuse it at once, within little memory.
def framed(header: bytes, data: bytes = b"", header_len=None) -> bytes:
    body = struct.pack("<8sIQ", MAGIC, FORMAT_VERSION, len(header) if header_len is None else header_len)
    body += header + data
    return body + hashlib.sha256(body).digest()


def with_array(entry: dict, data: bytes = bytes(16)) -> bytes:
    return framed(json.dumps({"arrays": [{**F8, **entry}], "meta": {}}).encode(), data)


def deep_json(levels: int) -> bytes:
    return framed(b'{"arrays": [], "meta": {"x": ' + b"[" * levels + b"]" * levels + b"}}")


HOSTILE_FILES = {
    "nested 100,000 levels": (deep_json(10**5), "nested deeper than 64 levels"),
    "nested 200 levels": (deep_json(200), "nested deeper than 64 levels"),
    "header length 2**63": (framed(b"{}", header_len=2**63), "header length 9223372036854775808 runs past"),
    "header over the limit": (framed(b'{"arrays": [], "meta": {"x": "' + b"a" * MAX_HEADER_BYTES + b'"}}'),
                              f"exceeds the limit of {MAX_HEADER_BYTES} bytes"),
    "10**12 elements": (with_array({"shape": [10**12], "nbytes": 8 * 10**12}), r"expects 8000000000000 bytes"),
    "10**12 elements, nbytes small": (with_array({"shape": [10**6, 10**6]}), r"expects 8000000000000 bytes"),
    "negative shape": (with_array({"shape": [-2]}), "invalid array entry"),
    "40 dimensions": (with_array({"shape": [1] * 40, "nbytes": 8}, bytes(8)), "invalid array entry"),
    "dimension 10**30 beside a 0": (with_array({"shape": [0, 10**30], "nbytes": 0}, b""), "invalid array entry"),
    "offset outside the file": (with_array({"offset": 10**9}), r"header says 16 at 1000000000"),
    "object dtype": (with_array({"dtype": "|O"}), "invalid array entry"),
    "dtype not a string": (with_array({"dtype": ["<f8"]}), "invalid array entry"),
    "name not a string": (with_array({"name": 5}), "invalid array entry"),
    "duplicate array names": (framed(json.dumps({"arrays": [F8, {**F8, "offset": 16}], "meta": {}}).encode(),
                                     bytes(32)), r"duplicate array names: 'w' twice"),
    "NaN in the header": (framed(b'{"arrays": [], "meta": {"lr": NaN}}'), "NaN is not JSON"),
    "Infinity in the header": (framed(b'{"arrays": [], "meta": {"lr": -Infinity}}'), "-Infinity is not JSON"),
    "1e999 in the header": (framed(b'{"arrays": [], "meta": {"lr": 1e999}}'), "number 1e999 is too large"),
    "integer of 5000 digits": (framed(b'{"arrays": [], "meta": {"step": ' + b"9" * 5000 + b"}}"),
                               "header is not valid UTF-8 JSON"),
    "non-UTF-8 header": (framed(b'{"arrays": [], "meta": {"x": "\xff"}}'), "header is not valid UTF-8 JSON"),
    "header not an object": (framed(b"[]"), "expected a header object"),
    "empty file": (b"", "expected at least 52 bytes"),
    "not a checkpoint": (b"hello, world\n" * 10, "is not a numpy_rnn checkpoint"),
    "checksum mismatch": (framed(b'{"arrays": [], "meta": {}}')[:-1] + b"\0", "SHA-256 mismatch"),
    "truncated": (framed(b'{"arrays": [], "meta": {}}')[:-5], "SHA-256 mismatch"),
}


@pytest.mark.parametrize("name", HOSTILE_FILES)
def test_hostile_file_is_refused_in_one_line_within_little_memory(tmp_path, name):
    content, message = HOSTILE_FILES[name]
    path = tmp_path / "crafted.ckpt"
    path.write_bytes(content)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as refused:
            load_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(refused.value)
    assert message in text and "crafted.ckpt" in text and "\n" not in text and len(text) < 400
    assert peak < len(content) + 2**20, f"{peak} bytes for a {len(content)}-byte file"


# ----------------------------------------------------------------------------- hostile runs
# What `numpy-rnn eval RUN_DIR` makes of a run folder whose checkpoint is hostile: the files
# above, and training checkpoints whose metadata (saved with a valid checksum by the module's
# own writer) contradicts itself, its arrays or common sense. The trainer checks the meaning.
def _drop(mapping, key):
    mapping.pop(key)


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(arrays, meta):
        target = meta
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


def _first_array(prefix, value):
    def change(arrays, meta):
        name = next(name for name in arrays if name.startswith(prefix))
        arrays[name] = value
    return change


HOSTILE_META = {
    "no config": (lambda arrays, meta: _drop(meta, "config"), "config"),
    "config not an object": (_set("config", "lstm"), "config"),
    "hidden_size 10**6, arrays of 64": (_set("config", "hidden_size", 10**6), "hidden_size|shape"),
    "hidden_size 30,000, arrays of 64": (_set("config", "hidden_size", 30_000), "hidden_size|shape"),
    "eval_size 10**9": (_set("config", "eval_size", 10**9), "eval_size"),
    "seq_len 10**9": (_set("config", "seq_len", 10**9), "seq_len|batch"),
    "hidden_size a string": (_set("config", "hidden_size", "64"), "hidden_size"),
    "unknown config key": (_set("config", "surprise", 1), "surprise"),
    "optimizer state a list": (_set("optimizer", [1, 2]), "optimizer"),
    "optimizer moment of the wrong shape": (_first_array("optimizer.", np.zeros((2, 2))), "optimizer|shape"),
    "parameter of the wrong shape": (_first_array("params.", np.zeros((3, 5))), "shape"),
    "parameter missing": (lambda arrays, meta: _drop(arrays, next(n for n in arrays if n.startswith("params."))),
                          "param"),
    "step 'fifty'": (_set("step", "fifty"), "step"),
    "step -1": (_set("step", -1), "step"),
    "history not a list": (_set("history", {"step": 1}), "history"),
    "history of numbers": (_set("history", [1, 2]), "history"),
    "unknown meta key": (_set("surprise", {"x": 1}), "surprise"),
    "data state a number": (_set("data", 5), "data"),
    "format of another program": (_set("format", "other/9"), "format"),
}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished run of a 64-unit LSTM: (arrays, meta) of its checkpoint."""
    from numpy_rnn.cli import main

    out = tmp_path_factory.mktemp("hostile") / "base"
    assert main(["train", "--hidden-size", "64", "--steps", "2", "--eval-every", "1", "--eval-size", "8",
                 "--no-progress", "--out", str(out)]) == 0
    return load_checkpoint(out / "checkpoint.ckpt")


@pytest.fixture
def bounded_address_space():
    """Linux: the process may grow by 1 GiB at most, so that a hostile file the checks miss
    fails with MemoryError (which the test tells apart) instead of exhausting the machine."""
    try:
        import resource
    except ImportError:  # Windows: no guard
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except OSError:
        yield
        return
    limit = used + 2**30 if hard == resource.RLIM_INFINITY else min(used + 2**30, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _eval_in_process(run_dir, capsys):
    from numpy_rnn.cli import main

    try:
        code = main(["eval", str(run_dir)])
    except SystemExit as exc:
        code = exc.code
    return code, *capsys.readouterr()


@pytest.mark.parametrize("name", [*HOSTILE_FILES, *HOSTILE_META])
def test_eval_refuses_a_hostile_checkpoint_in_one_line(name, trained_run, tmp_path, capsys, bounded_address_space):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / "checkpoint.ckpt"
    if name in HOSTILE_FILES:
        content, message = HOSTILE_FILES[name]
        path.write_bytes(content)
        message = re.escape(message)
    else:
        change, message = HOSTILE_META[name]
        arrays, meta = ({k: v.copy() for k, v in part.items()} if part is trained_run[0] else
                        json.loads(json.dumps(part)) for part in trained_run)
        change(arrays, meta)
        save_checkpoint(path, arrays, meta)
    tracemalloc.start()
    try:
        code, out, err = _eval_in_process(run_dir, capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    lines = err.splitlines()
    assert code == 1 and out == "", (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("numpy-rnn eval: error: "), err
    assert "Traceback" not in err and "out of memory" not in err and "recursion" not in err, err
    assert re.search(message, lines[0], flags=re.IGNORECASE), err
    assert peak < 50 * 2**20 + path.stat().st_size, f"{peak / 2**20:.0f} MiB"
