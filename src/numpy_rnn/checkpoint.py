"""Safe checkpoints: named numeric arrays plus JSON metadata, without pickle.

File format (version 1), all integers little-endian:

======================  ==========================================================
bytes                   content
======================  ==========================================================
``[0, 8)``              magic ``b"NPRNNCKP"``
``[8, 12)``             format version, uint32 (``1``)
``[12, 20)``            header length ``L`` in bytes, uint64
``[20, 20 + L)``        header: UTF-8 JSON object ``{"arrays": [...], "meta": ...}``
``[20 + L, end - 32)``  data: the raw bytes of every array, C order, little-endian,
                        packed back to back in header order
``[end - 32, end)``     SHA-256 digest of every byte before it
======================  ==========================================================

Each entry of ``"arrays"`` is ``{"name", "dtype", "shape", "offset", "nbytes"}``: the name
(any non-empty string; dotted names such as ``layers.0.W`` are usual), the dtype string
(``"<f8"``, ``"|b1"``, ...; bool, integer, float and complex types only), the shape as a list,
and the offset (from the start of the data section) and size of its bytes. ``"meta"`` is the
caller's JSON data: configuration, step, generator state (``Generator.bit_generator.state``
of PCG64 is plain JSON data), data position, and so on.

Writes are atomic: the file is written to a temporary file in the same directory, flushed and
fsynced, renamed over ``path`` with ``os.replace``, and the directory is fsynced. Loading parses
only JSON and raw numbers, never pickle, and checks the magic, the version, the checksum, and
that the header describes exactly the bytes present.

A checksum is no signature: a crafted file can carry a valid SHA-256. Loading therefore trusts
nothing in the file and refuses, with one CheckpointError line, anything outside these limits
(saving refuses them too, so every file written can be read back):

- the header is at most ``MAX_HEADER_BYTES`` (16 MiB: some 100,000 evaluation records of a
  training history) of strict JSON: no ``NaN``/``Infinity``, no number too large for a
  float, objects and arrays nested at most ``MAX_JSON_DEPTH`` (64) deep;
- every array entry has exactly the five keys; a non-empty str name, unique; a dtype of the
  list above; a shape of at most ``MAX_NDIM`` (32) ints >= 0; and offsets and sizes that tile
  the data section exactly, all checked before any array memory is allocated;
- running out of memory while loading is a CheckpointError too.

So loading costs time and memory in proportion to the file's size (the arrays it holds, and
Python objects for the parsed header: at most some 25 bytes per header byte, for a header of
empty objects). What the metadata *means* is the caller's to check;
:func:`check_schema` checks its form::

    check_schema(path, meta, {"step": int, "history": [{"step": int, "val_loss": (float, None)}],
                              "config": {str: (int, float, str, bool, None, {str: str})},
                              "note?": str})

raises CheckpointError such as ``checkpoint 'run/checkpoint.ckpt': meta['step']: expected int,
got str 'fifty'``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import struct
from collections.abc import Mapping

import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_HEADER_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_NDIM",
    "CheckpointError",
    "check_schema",
    "load_checkpoint",
    "save_checkpoint",
]

MAGIC = b"NPRNNCKP"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 16 * 2**20
MAX_JSON_DEPTH = 64
MAX_NDIM = 32
_MAX_ARRAY_BYTES = 2**62  # far beyond any real array; keeps numpy's size arithmetic in range
_PREFIX = struct.Struct("<8sIQ")  # magic, version, header length
_DIGEST_SIZE = hashlib.sha256().digest_size
_DTYPES = {
    np.dtype(name).newbyteorder("<").str: np.dtype(name)
    for name in (
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "complex64", "complex128",
    )
}  # stored dtype string -> native dtype
_ENTRY_KEYS = {"name", "dtype", "shape", "offset", "nbytes"}


class CheckpointError(Exception):
    """A checkpoint could not be saved or loaded; the message names the file and the cause."""


# ----------------------------------------------------------------------------- saving
def save_checkpoint(path, arrays: dict, meta: dict) -> None:
    """Write ``arrays`` (name -> numeric ndarray) and ``meta`` (JSON data) to ``path`` atomically.

    Raises TypeError or ValueError for bad arguments (before touching the disk) and
    CheckpointError when the file system fails; then any previous file at ``path`` is intact
    and no temporary file is left. The arrays passed in are never modified.
    """
    path = _check_path("save_checkpoint", path)
    entries = _check_arrays(arrays)
    header = _header_bytes(entries, meta)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    try:
        _write_file(tmp, header, [a for _, a in entries])
        os.replace(tmp, path)
    except BaseException as exc:
        _remove_quietly(tmp)
        if isinstance(exc, OSError):
            raise CheckpointError(f"cannot save checkpoint '{path}': {_describe(exc)}") from exc
        raise
    try:
        _fsync_directory(directory)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint '{path}' was written but its directory could not be synced: "
            f"{_describe(exc)}"
        ) from exc


def _check_path(owner: str, path) -> str:
    """``path`` as a str; TypeError unless a str or os.PathLike."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{owner}: expected path to be a str or os.PathLike, got {type(path).__name__}"
        )
    return os.fspath(path)


def _check_arrays(arrays) -> list[tuple[str, np.ndarray]]:
    """Validate ``arrays``; return ``(name, little-endian C-contiguous array)`` pairs.

    Conversion copies only where needed, and never writes to the caller's arrays.
    """
    if not isinstance(arrays, dict):
        raise TypeError(
            f"save_checkpoint: expected arrays to be a dict, got {type(arrays).__name__}"
        )
    entries = []
    for name, array in arrays.items():
        if not isinstance(name, str):
            raise TypeError(
                f"save_checkpoint: expected array names to be str, got {type(name).__name__}"
            )
        if not name:
            raise ValueError("save_checkpoint: expected non-empty array names, got ''")
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"save_checkpoint: expected arrays[{name!r}] to be a numpy.ndarray, "
                f"got {type(array).__name__}"
            )
        stored = array.dtype.newbyteorder("<")
        if stored.str not in _DTYPES:  # object, str, bytes, void, structured, datetime, ...
            raise TypeError(
                f"save_checkpoint: expected arrays[{name!r}] of a bool, integer, float or "
                f"complex dtype, got {array.dtype}"
            )
        entries.append((name, array.astype(stored, order="C", copy=False)))
    return entries


def _header_bytes(entries, meta) -> bytes:
    """The UTF-8 JSON header describing ``entries`` and holding ``meta``."""
    if not isinstance(meta, dict):
        raise TypeError(f"save_checkpoint: expected meta to be a dict, got {type(meta).__name__}")
    if _nesting_depth(meta, MAX_JSON_DEPTH - 1) >= MAX_JSON_DEPTH:
        raise ValueError(
            f"save_checkpoint: expected meta nested at most {MAX_JSON_DEPTH - 1} levels deep, "
            f"got deeper"
        )
    described, offset = [], 0
    for name, array in entries:
        described.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape),
                          "offset": offset, "nbytes": array.nbytes})
        offset += array.nbytes
    try:
        text = json.dumps({"arrays": described, "meta": meta}, allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"save_checkpoint: expected meta to be JSON data, got {exc}") from None
    except ValueError as exc:  # NaN, infinity or a circular reference
        raise ValueError(f"save_checkpoint: expected meta to be JSON data, got {exc}") from None
    if json.loads(text)["meta"] != meta:
        raise TypeError(
            "save_checkpoint: expected meta to survive JSON unchanged (str keys, lists not "
            "tuples), got a value that does not"
        )
    header = text.encode("utf-8")
    if len(header) > MAX_HEADER_BYTES:
        raise ValueError(
            f"save_checkpoint: expected a header of at most {MAX_HEADER_BYTES} bytes, got "
            f"{len(header)} (meta too large)"
        )
    return header


def _write_file(tmp: str, header: bytes, arrays: list[np.ndarray]) -> None:
    """Create ``tmp`` exclusively and write the whole file to it, checksum last, then fsync."""
    digest = hashlib.sha256()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(tmp, flags, 0o666), "wb") as f:
        for chunk in (_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)), header, *arrays):
            f.write(chunk)
            digest.update(chunk)
        f.write(digest.digest())
        f.flush()
        os.fsync(f.fileno())


def _remove_quietly(path: str) -> None:
    """Remove ``path`` if it exists; a failure here must not hide the original error."""
    try:
        os.remove(path)
    except OSError:
        pass


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (POSIX; Windows has no directory handles)."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(exc: OSError) -> str:
    """A short cause such as ``[Errno 28] No space left on device``."""
    if exc.errno is not None:
        return f"[Errno {exc.errno}] {exc.strerror or os.strerror(exc.errno)}"
    return str(exc) or type(exc).__name__


# ----------------------------------------------------------------------------- loading
def load_checkpoint(path, expected: Mapping | None = None) -> tuple[dict, dict]:
    """Read ``(arrays, meta)`` from ``path``, verifying everything; never runs code.

    ``expected`` optionally maps every name to ``(shape, dtype)``; the file must hold exactly
    those names with exactly those shapes and dtypes. Any problem with the file raises
    CheckpointError naming it and saying what is wrong.
    """
    path = _check_path("load_checkpoint", path)
    try:
        with open(path, "rb") as f:
            data = f.read()
        view = memoryview(data)  # slices of a memoryview do not copy the file's bytes
        header, data_start = _verify_frame(path, view)
        entries, meta = _parse_header(path, header)
        arrays = _read_arrays(path, entries, view[data_start : len(data) - _DIGEST_SIZE])
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint '{path}': {_describe(exc)}") from exc
    except MemoryError:
        raise CheckpointError(f"checkpoint '{path}': not enough memory to load it") from None
    if expected is not None:
        _check_expected(path, arrays, expected)
    return arrays, meta


def _verify_frame(path: str, data: memoryview) -> tuple[bytes, int]:
    """Check magic, version, checksum and header bounds; return the header and data start."""
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise CheckpointError(
            f"'{path}' is not a numpy_rnn checkpoint: expected magic {MAGIC!r}, "
            f"got {bytes(data[: len(MAGIC)])!r}"
        )
    minimum = _PREFIX.size + _DIGEST_SIZE
    if len(data) < minimum:
        raise CheckpointError(
            f"checkpoint '{path}' is truncated: expected at least {minimum} bytes, got {len(data)}"
        )
    _, version, header_len = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' has format version {version}; this library reads "
            f"version {FORMAT_VERSION}"
        )
    body, digest = data[:-_DIGEST_SIZE], data[-_DIGEST_SIZE:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"checkpoint '{path}' is corrupted or truncated: SHA-256 mismatch")
    data_start = _PREFIX.size + header_len
    if data_start > len(body):
        raise CheckpointError(
            f"checkpoint '{path}': header length {header_len} runs past the end of the file"
        )
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"checkpoint '{path}': header length {header_len} exceeds the limit of "
            f"{MAX_HEADER_BYTES} bytes"
        )
    return bytes(body[_PREFIX.size : data_start]), data_start


def _parse_header(path: str, header: bytes) -> tuple[list, dict]:
    """Decode the JSON header; return its array entries (checked for form) and the meta."""
    too_deep = f"checkpoint '{path}': header is nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        parsed = json.loads(header.decode("utf-8"), parse_constant=_refuse_constant,
                            parse_float=_finite_float)
    except RecursionError:
        raise CheckpointError(too_deep) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint '{path}': header is not valid UTF-8 JSON: {exc}"
        ) from None
    if _nesting_depth(parsed, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise CheckpointError(too_deep)
    if not isinstance(parsed, dict) or set(parsed) != {"arrays", "meta"}:
        raise CheckpointError(
            f"checkpoint '{path}': expected a header object with keys 'arrays' and 'meta'"
        )
    if not isinstance(parsed["arrays"], list) or not isinstance(parsed["meta"], dict):
        raise CheckpointError(
            f"checkpoint '{path}': expected 'arrays' to be a list and 'meta' an object"
        )
    for entry in parsed["arrays"]:
        _check_entry(path, entry)
    seen = set()
    for entry in parsed["arrays"]:
        if entry["name"] in seen:
            raise CheckpointError(
                f"checkpoint '{path}': duplicate array names: {_short(entry['name'])} twice"
            )
        seen.add(entry["name"])
    return parsed["arrays"], parsed["meta"]


def _refuse_constant(name: str):
    """``json.loads`` hook: the format is strict JSON, which has no NaN or infinities."""
    raise ValueError(f"{name} is not JSON (the format has no NaN or infinities)")


def _finite_float(text: str) -> float:
    """``json.loads`` hook: a number such as ``1e999`` would silently become infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:30]} is too large for a float")
    return value


def _nesting_depth(value, limit: int) -> int:
    """How deep lists and dicts nest in ``value`` (a scalar: 0), counted level by level without
    recursion and at most to ``limit + 1`` (so a circular structure ends too)."""
    depth, level = 0, [value]
    while depth <= limit:
        level = [v for v in level if isinstance(v, (list, dict))]
        if not level:
            break
        depth += 1
        level = [item for v in level for item in (v.values() if isinstance(v, dict) else v)]
    return depth


def _short(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a crafted value must not flood a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_entry(path: str, entry) -> None:
    """Check the form of one array entry of the header (types and dtype; sizes come later)."""
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        raise CheckpointError(
            f"checkpoint '{path}': expected array entries with keys {sorted(_ENTRY_KEYS)}, "
            f"got {_short(entry)}"
        )
    shape = entry["shape"]
    shape_ok = isinstance(shape, list) and len(shape) <= MAX_NDIM
    sizes = [entry["offset"], entry["nbytes"], *(shape if shape_ok else [None])]
    if (
        not isinstance(entry["name"], str)
        or not entry["name"]
        or not isinstance(entry["dtype"], str)
        or entry["dtype"] not in _DTYPES
        or not all(type(v) is int and v >= 0 for v in sizes)
        or math.prod(max(n, 1) for n in shape) * _DTYPES[entry["dtype"]].itemsize > _MAX_ARRAY_BYTES
    ):
        raise CheckpointError(
            f"checkpoint '{path}': invalid array entry {_short(entry)} (expected a non-empty "
            f"name, a bool, integer, float or complex dtype such as '<f8', a shape of at most "
            f"{MAX_NDIM} sizes >= 0, an offset and nbytes >= 0)"
        )


def _read_arrays(path: str, entries: list, data: memoryview) -> dict:
    """Copy every array out of the data section, checking that the entries tile it exactly."""
    arrays, offset = {}, 0
    for entry in entries:
        name, dtype = entry["name"], _DTYPES[entry["dtype"]]
        size = math.prod(entry["shape"]) * dtype.itemsize
        if entry["offset"] != offset or entry["nbytes"] != size or offset + size > len(data):
            raise CheckpointError(
                f"checkpoint '{path}': array {_short(name)} ({entry['dtype']}, shape "
                f"{entry['shape']}) expects {size} bytes at offset {offset} of a "
                f"{len(data)}-byte data section, the header says {entry['nbytes']} at "
                f"{entry['offset']}"
            )
        raw = np.frombuffer(data, dtype=np.dtype(entry["dtype"]), count=size // dtype.itemsize,
                            offset=offset)
        if dtype.kind == "b" and np.any(raw.view(np.uint8) > 1):
            raise CheckpointError(
                f"checkpoint '{path}': bool array {_short(name)} holds bytes other than 0 and 1"
            )
        arrays[name] = raw.astype(dtype).reshape(entry["shape"])
        offset += size
    if offset != len(data):
        raise CheckpointError(
            f"checkpoint '{path}': data section has {len(data)} bytes, "
            f"the header describes {offset}"
        )
    return arrays


def _check_expected(path: str, arrays: dict, expected) -> None:
    """CheckpointError unless ``arrays`` has exactly the names, shapes and dtypes expected."""
    if not isinstance(expected, Mapping):
        raise TypeError(
            f"load_checkpoint: expected `expected` to be a dict of name -> (shape, dtype), "
            f"got {type(expected).__name__}"
        )
    problems = [f"missing {name!r}" for name in expected if name not in arrays]
    problems += [f"unexpected {name!r}" for name in arrays if name not in expected]
    for name in expected.keys() & arrays.keys():
        shape, dtype = expected[name]
        got = arrays[name]
        if tuple(shape) != got.shape or np.dtype(dtype) != got.dtype:
            problems.append(
                f"{name!r}: expected shape {tuple(shape)} dtype {np.dtype(dtype)}, "
                f"got shape {got.shape} dtype {got.dtype}"
            )
    if problems:
        raise CheckpointError(f"checkpoint '{path}' does not match expected: {'; '.join(problems)}")


# ----------------------------------------------------------------------------- metadata form
_SCALARS = {int: "int", float: "float", str: "str", bool: "bool", None: "null", list: "list",
            dict: "object"}


def check_schema(path, value, schema, where: str = "meta") -> None:
    """CheckpointError unless the JSON data ``value`` (loaded from ``path``) has the form ``schema``;
    ``where`` names the data in the error (the checkpoint's ``meta`` by default).

    A schema is one of:

    - ``int`` (not bool), ``float`` (an int is accepted), ``str``, ``bool``, ``None`` (null),
      ``list`` or ``dict`` (any list or object);
    - a tuple of schemas: any one of them, e.g. ``(float, None)``;
    - ``[item]``: a list whose every element has the form ``item``;
    - ``{"key": schema, "other?": schema}``: an object with exactly these keys, those written
      with a trailing ``?`` optional; ``{str: schema}``: any keys, every value of the form.

    Only the form is checked (ranges, such as ``step >= 0``, are the caller's); the message
    names the place, e.g. ``meta['history'][3]['step']: expected int, got str 'fifty'``.
    """
    problem = _schema_problem(value, schema, where)
    if problem:
        raise CheckpointError(f"checkpoint '{_check_path('check_schema', path)}': {problem}")


def _schema_problem(value, schema, where: str) -> str | None:
    """What is wrong with ``value`` against ``schema`` (None: nothing), naming ``where``."""
    if isinstance(schema, tuple):
        problems = [_schema_problem(value, option, where) for option in schema]
        if not all(problems):
            return None
        same_kind = [p for option, p in zip(schema, problems) if _kind_matches(value, option)]
        return same_kind[0] if same_kind else _mismatch(where, _schema_name(schema), value)
    if not _kind_matches(value, schema):
        return _mismatch(where, _schema_name(schema), value)
    if isinstance(schema, list):
        return next(filter(None, (_schema_problem(item, schema[0], f"{where}[{i}]")
                                  for i, item in enumerate(value))), None)
    if isinstance(schema, dict):
        return _object_problem(value, schema, where)
    return None


def _object_problem(value: dict, schema: dict, where: str) -> str | None:
    if set(schema) == {str}:
        fields = {key: schema[str] for key in value}
    else:
        fields = {key.rstrip("?"): sub for key, sub in schema.items()}
        required = {key for key in schema if not key.endswith("?")}
        missing = sorted(required - value.keys())
        if missing:
            return f"{where}: missing key {missing[0]!r}"
        unexpected = sorted(value.keys() - fields.keys())
        if unexpected:
            return f"{where}: unexpected key {_short(unexpected[0])}"
    return next(filter(None, (_schema_problem(value[key], sub, f"{where}[{key!r}]")
                              for key, sub in fields.items() if key in value)), None)


def _kind_matches(value, schema) -> bool:
    """Whether ``value`` is of the outer kind of ``schema`` (a type, a list or a dict schema)."""
    if isinstance(schema, (list, dict)):
        return isinstance(value, type(schema))
    if schema is None:
        return value is None
    if schema is float:
        return type(value) in (int, float)
    if schema in (int, bool, str):
        return type(value) is schema
    if schema in (list, dict):
        return isinstance(value, schema)
    raise TypeError(f"check_schema: expected a schema of JSON types, lists, dicts and tuples, "
                    f"got {schema!r}")


def _schema_name(schema) -> str:
    if isinstance(schema, tuple):
        return " or ".join(_schema_name(option) for option in schema)
    if isinstance(schema, (list, dict)):
        return _SCALARS[type(schema)]
    return _SCALARS[schema]


def _mismatch(where: str, expected: str, value) -> str:
    got = "null" if value is None else f"{type(value).__name__} {_short(value, 40)}"
    return f"{where}: expected {expected}, got {got}"
