"""Weight initialisers, chosen per weight by name or by callable.

Every initialiser has the signature ``init(shape, rng, dtype) -> ndarray``: ``shape`` the
weight's shape, ``rng`` the ``numpy.random.Generator`` it draws from (unused by the
deterministic ones) and ``dtype`` that of the array returned. Recurrent weights stack G gate
blocks side by side, ``R`` of shape ``(H, G*H)``: the square initialisers (identity,
orthogonal) fill each ``(H, H)`` gate block on its own.

| name | rule |
|---|---|
| ``torch`` | U(-1/sqrt(H), 1/sqrt(H)), PyTorch's default for every RNN weight and bias |
| ``zeros`` | 0 |
| ``identity`` | I in each square gate block (Le, Jaitly & Hinton 2015); ``scaled_identity(s)`` for s*I |
| ``orthogonal`` | a random orthogonal matrix per square block (Saxe et al. 2014) |
| ``lecun_uniform`` / ``lecun_normal`` | U(+-sqrt(3/fan_in)) / N(0, 1/fan_in) |
| ``glorot_uniform`` / ``glorot_normal`` | U(+-sqrt(6/(fan_in+fan_out))) / N(0, 2/(fan_in+fan_out)) |

``fan_in`` is ``shape[0]`` and ``fan_out`` ``shape[-1]`` (a bias has fan_in = its length).

Names with a parameter, written ``"name:value"`` (so a command line can give them too):
``normal:s`` N(0, s**2) (Le et al.'s IRNN draws W from N(0, 0.001**2)), ``uniform:a`` U(-a, a),
``constant:c``, ``scaled_identity:s``.

``chrono:T`` (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?") sets the gate
biases of a layer of hidden size ``H`` for time dependencies of up to ``T`` steps (``T >= 2``):
on an LSTM bias ``(4H,)`` (gates ``i, f, g, o``) ``b_f ~ log(U[1, T - 1])``, ``b_i = -b_f``,
``b_g = b_o = 0``; on a GRU bias ``(3H,)`` (gates ``r, z, n``; ``h(t) = (1 - z) n + z h(t-1)``,
so ``z`` is the gate that keeps) ``b_z ~ log(U[1, T - 1])``, ``b_r = b_n = 0``. A unit whose keep
gate starts at ``sig(b) = 1 - 1/tau`` forgets with a time constant ``tau``: these draws spread
``tau`` uniformly over ``[2, T]``. It applies to ``b`` (``beta`` in a layer-normalised layer),
nothing else.

``forget_bias:v`` sets an LSTM bias ``(4H,)`` to zeros but ``v`` in the forget gate's block
(Gers et al. 2000; Jozefowicz et al. 2015 recommend 1; Keras' ``unit_forget_bias`` is
``forget_bias:1``): the command line's way to ``LSTM(forget_bias=v)``, which sets that block
alone and keeps the other gates' initialisation.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple, np.random.Generator, np.dtype], np.ndarray]


def _fans(shape: tuple) -> tuple[int, int]:
    return shape[0], shape[-1]


def torch_default(hidden_size: int) -> Initializer:
    """An initialiser giving U(-1/sqrt(H), 1/sqrt(H)) for a layer of hidden size ``hidden_size`` H."""
    bound = 1.0 / np.sqrt(hidden_size)

    def init(shape, rng, dtype):
        return rng.uniform(-bound, bound, size=shape).astype(dtype)
    init.__name__ = f"torch_default({hidden_size})"
    return init


def zeros(shape: tuple, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """All zeros (biases)."""
    return np.zeros(shape, dtype=dtype)


def _square_blocks(shape: tuple, make_block) -> np.ndarray:
    """Fill a (H, G*H) matrix block by block; anything else is an error."""
    if len(shape) != 2 or shape[1] % shape[0]:
        raise ValueError(f"init: expected a (H, G*H) matrix for a square initialiser, got shape {shape}")
    return np.concatenate([make_block(shape[0]) for _ in range(shape[1] // shape[0])], axis=1)


def scaled_identity(scale: float) -> Initializer:
    """An initialiser giving ``scale * I`` in each square gate block."""
    def init(shape, rng, dtype):
        """``scale * I`` in each square ``(H, H)`` gate block."""
        return _square_blocks(shape, lambda n: scale * np.eye(n)).astype(dtype)
    init.__name__ = f"scaled_identity({scale})"
    return init


#: the identity in each square gate block (the notebook's ``R``, the IRNN's)
identity = scaled_identity(1.0)
identity.__name__ = "identity"


def orthogonal(shape: tuple, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """QR of a Gaussian matrix with the sign of diag(R) folded in (uniform over O(n))."""
    def block(n):
        q, r = np.linalg.qr(rng.standard_normal((n, n)))
        return q * np.sign(np.diag(r))
    return _square_blocks(shape, block).astype(dtype)


def lecun_uniform(shape: tuple, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """U(-sqrt(3 / fan_in), sqrt(3 / fan_in)), ``fan_in = shape[0]`` (the notebook's ``W`` and ``V``)."""
    bound = np.sqrt(3.0 / _fans(shape)[0])
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def lecun_normal(shape: tuple, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """N(0, 1 / fan_in), ``fan_in = shape[0]``."""
    return (rng.standard_normal(shape) / np.sqrt(_fans(shape)[0])).astype(dtype)


def glorot_uniform(shape: tuple, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """U(-sqrt(6 / (fan_in + fan_out)), sqrt(6 / (fan_in + fan_out))), fans ``shape[0]`` and ``shape[-1]``."""
    bound = np.sqrt(6.0 / sum(_fans(shape)))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def glorot_normal(shape: tuple, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """N(0, 2 / (fan_in + fan_out)), fans ``shape[0]`` and ``shape[-1]``."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / sum(_fans(shape)))).astype(dtype)


INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "identity": identity,
    "orthogonal": orthogonal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
}


def normal(std: float) -> Initializer:
    """An initialiser giving N(0, s**2), ``std`` s."""
    def init(shape, rng, dtype):
        return (std * rng.standard_normal(shape)).astype(dtype)
    return init


def uniform(bound: float) -> Initializer:
    """An initialiser giving U(-a, a), ``bound`` a."""
    def init(shape, rng, dtype):
        return rng.uniform(-bound, bound, size=shape).astype(dtype)
    return init


def constant(value: float) -> Initializer:
    """An initialiser giving ``value`` everywhere."""
    def init(shape, rng, dtype):
        return np.full(shape, value, dtype=dtype)
    return init


def chrono(max_steps: float, hidden_size: int) -> Initializer:
    """An initialiser giving the chrono gate biases (see the module docstring) for time
    dependencies of up to ``max_steps`` steps in a layer of hidden size ``hidden_size``."""
    if max_steps < 2:
        raise ValueError(f"init: expected chrono:T with T >= 2 (the biases are log U[1, T - 1]), got chrono:{max_steps:g}")
    H = hidden_size

    def init(shape, rng, dtype):
        if shape not in ((4 * H,), (3 * H,)):
            raise ValueError(f"init: chrono:{max_steps:g} sets the gate biases of an LSTM ({4 * H},) or a GRU "
                             f"({3 * H},) of hidden size {H} (b, or beta with layer_norm), got shape {shape}")
        bias = np.zeros(shape)
        keep = np.log(rng.uniform(1.0, max_steps - 1.0, size=H))
        bias[H:2 * H] = keep  # the keep gate's block: LSTM f (i f g o), GRU z (r z n)
        if shape == (4 * H,):
            bias[:H] = -keep  # b_i = -b_f
        return bias.astype(dtype)
    init.__name__ = f"chrono({max_steps:g})"
    return init


def forget_bias(value: float, hidden_size: int) -> Initializer:
    """An initialiser giving an LSTM bias ``(4H,)`` of zeros but ``value`` in the forget gate's
    block (see the module docstring), for a layer of ``hidden_size`` H."""
    H = hidden_size

    def init(shape, rng, dtype):
        if shape != (4 * H,):
            raise ValueError(f"init: forget_bias:{value:g} sets the forget gate's block of an LSTM bias ({4 * H},) "
                             f"of hidden size {H} (b, or beta with layer_norm), got shape {shape}")
        bias = np.zeros(shape, dtype=dtype)
        bias[H:2 * H] = value  # gates i, f, g, o
        return bias
    init.__name__ = f"forget_bias({value:g})"
    return init


#: names with a value that need the layer's hidden size: they set gate blocks of a bias
GATE_BIASES: dict[str, Callable[[float, int], Initializer]] = {"chrono": chrono, "forget_bias": forget_bias}

PARAMETRIC: dict[str, Callable[[float], Initializer]] = {
    "normal": normal, "uniform": uniform, "constant": constant, "scaled_identity": scaled_identity,
}


def get_initializer(spec, hidden_size: int) -> Initializer:
    """The initialiser that ``spec`` names: a registered name (``"torch"`` needs the layer's
    ``hidden_size``), a ``"name:value"`` of :data:`PARAMETRIC`, one of :data:`GATE_BIASES`
    (``"chrono:T"``, ``"forget_bias:v"``: they need it too), or a callable
    ``init(shape, rng, dtype)``."""
    if callable(spec):
        return spec
    if spec == "torch":
        return torch_default(hidden_size)
    if isinstance(spec, str) and spec in INITIALIZERS:
        return INITIALIZERS[spec]
    if isinstance(spec, str) and spec.partition(":")[0] in (*PARAMETRIC, *GATE_BIASES):
        name, _, value = spec.partition(":")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"init: expected {name}:<number>, got {spec!r}") from None
        if not np.isfinite(number):
            raise ValueError(f"init: expected a finite number in {spec!r}")
        return GATE_BIASES[name](number, hidden_size) if name in GATE_BIASES else PARAMETRIC[name](number)
    valid = ", ".join(sorted([*INITIALIZERS, "torch"]) + [f"{name}:<number>" for name in PARAMETRIC]
                      + ["chrono:<T>", "forget_bias:<number>"])
    raise ValueError(f"init: unknown initialiser {spec!r}; valid names: {valid}")
