"""numpy_rnn.interop: state-dict conversion both ways and parity with torch.nn.RNN/LSTM/GRU.

Parity runs torch's own modules in float64 on the same weights and compares outputs, final
states, the input and initial-state gradients and every parameter gradient to 1e-10.
"""
import sys

import numpy as np
import pytest

from numpy_rnn import GRU, LSTM, ElmanCell, Linear, Recurrent, SimpleRNN
from numpy_rnn.interop import load_torch_state_dict, to_torch_module, to_torch_state_dict

B, T, D, H = 3, 7, 4, 5
P = 2  # proj_size of the LSTM with projections
MIXED_LENGTHS = [7, 3, 5]  # unsorted on purpose
ATOL = 1e-10

KINDS = {
    "rnn_tanh": (SimpleRNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (SimpleRNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, {}),
    "lstm_proj": (LSTM, {"proj_size": P}),
    "gru": (GRU, {}),
}


def make_layer(kind, num_layers=1, bidirectional=False, seed=0, **options):
    cls, kind_options = KINDS[kind]
    return cls(D, H, num_layers, bidirectional=bidirectional, rng=seed, **kind_options, **options)


def torch_class(torch, kind):
    return getattr(torch.nn, {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[kind.split("_")[0]])


def torch_module(torch, kind, num_layers, bidirectional, seed=0, bias=True):
    """A torch module with torch's own random init (biases nonzero in every block)."""
    torch.manual_seed(seed)
    cls = torch_class(torch, kind)
    options = {"nonlinearity": kind[4:]} if kind.startswith("rnn") else {}
    options.update(KINDS[kind][1] if kind == "lstm_proj" else {})
    return cls(D, H, num_layers, bias=bias, batch_first=True, bidirectional=bidirectional, dtype=torch.float64,
               **options)


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def snapshot(layer):
    return {key: value.copy() for key, value in layer.params.items()}


def assert_params_equal(layer, expected):
    assert layer.params.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(layer.params[key], value, err_msg=key)


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_round_trip_restores_every_parameter(kind, num_layers, bidirectional, bias):
    source = make_layer(kind, num_layers, bidirectional, seed=1, bias=bias)
    target = make_layer(kind, num_layers, bidirectional, seed=2, bias=bias)
    load_torch_state_dict(target, to_torch_state_dict(source))
    assert_params_equal(target, source.params)


@pytest.mark.parametrize("num_layers, bidirectional, prefix, names", [
    (1, False, "", ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]),
    (2, True, "l0.", [f"{w}_l{k}{r}" for k in range(2) for r in ("", "_reverse")
                      for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]),
])
def test_state_dict_has_torchs_names_order_and_layout(num_layers, bidirectional, prefix, names):
    layer = make_layer("gru", num_layers, bidirectional)
    state_dict = to_torch_state_dict(layer)
    assert list(state_dict) == names
    np.testing.assert_array_equal(state_dict["weight_ih_l0"], layer.params[prefix + "W"].T)
    np.testing.assert_array_equal(state_dict["weight_hh_l0"], layer.params[prefix + "R"].T)
    np.testing.assert_array_equal(state_dict["bias_ih_l0"], layer.params[prefix + "b"])
    np.testing.assert_array_equal(state_dict["bias_hh_l0"][:2 * H], 0.0)
    np.testing.assert_array_equal(state_dict["bias_hh_l0"][2 * H:], layer.params[prefix + "b_hn"])


def test_state_dict_values_are_contiguous_copies():
    layer = make_layer("lstm", 2, True)
    for key, value in to_torch_state_dict(layer).items():
        assert value.flags.c_contiguous, key
        assert not any(np.shares_memory(value, p) for p in layer.params.values()), key


def test_loading_sums_the_two_biases_except_the_gru_n_block(torch):
    for kind in ("lstm", "gru"):
        module = torch_module(torch, kind, 1, False)
        layer = make_layer(kind)
        load_torch_state_dict(layer, module.state_dict())
        bias_ih, bias_hh = module.bias_ih_l0.detach().numpy(), module.bias_hh_l0.detach().numpy()
        if kind == "lstm":
            np.testing.assert_array_equal(layer.params["b"], bias_ih + bias_hh)
        else:
            np.testing.assert_array_equal(layer.params["b"][:2 * H], bias_ih[:2 * H] + bias_hh[:2 * H])
            np.testing.assert_array_equal(layer.params["b"][2 * H:], bias_ih[2 * H:])
            np.testing.assert_array_equal(layer.params["b_hn"], bias_hh[2 * H:])


# ---------------------------------------------------------------- parity
def run_torch(torch, module, x, state0, lengths, g_out, g_state):
    """Forward and backward through ``module``: name -> tuple of numpy arrays."""
    x_t = torch.tensor(x, requires_grad=True)
    state_t = None if state0 is None else tuple(torch.tensor(s, requires_grad=True) for s in as_tuple(state0))
    packed = x_t if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(
        x_t, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    hidden = None if state_t is None else (state_t if len(state_t) > 1 else state_t[0])
    out, state_n = module(packed, hidden)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[-2])
    state_n = as_tuple(state_n)
    loss = (out * torch.tensor(g_out)).sum() + sum((s * torch.tensor(g)).sum() for s, g in zip(state_n, g_state))
    loss.backward()
    return {"out": (out.detach().numpy(),), "state_n": tuple(s.detach().numpy() for s in state_n),
            "dx": (x_t.grad.numpy(),), "d_state0": () if state_t is None else tuple(s.grad.numpy() for s in state_t)}


def run_ours(layer, x, state0, lengths, g_out, g_state):
    """The same through ``layer``, as :func:`run_torch` returns it."""
    out, state_n = layer.forward(x, state0, lengths)
    layer.zero_grad()
    dx, d_state0 = layer.backward(g_out, g_state if len(g_state) > 1 else g_state[0])
    return {"out": (out,), "state_n": as_tuple(state_n), "dx": (dx,),
            "d_state0": () if state0 is None else as_tuple(d_state0)}


def assert_param_grads_match(module, layer):
    """Every parameter gradient; the bias rule of :mod:`numpy_rnn.interop`'s docstring."""
    ours = to_torch_state_dict(layer, layer.grads)
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    assert ours.keys() == grads.keys()
    for name, grad in grads.items():
        if name.startswith("bias_hh"):
            # torch's bias_hh gradient equals the bias_ih one (our b) outside GRU's n block
            expected = ours[name.replace("bias_hh", "bias_ih")].copy()
            if isinstance(layer, GRU):
                expected[2 * H:] = ours[name][2 * H:]  # b_hn's gradient
            np.testing.assert_allclose(expected, grad, rtol=0, atol=ATOL, err_msg=name)
        else:
            np.testing.assert_allclose(ours[name], grad, rtol=0, atol=ATOL, err_msg=name)


def state_shapes(layer, lead):
    """The shape of each state part: (L*dirs, *lead, width)."""
    return [(layer.num_layers * layer.num_directions, *lead, width) for width in layer.cell.state_widths]


def assert_parity(torch, module, layer, x, state0, lengths, rng):
    out_shape = x.shape[:-1] + (layer.num_directions * layer.h_size,)
    g_out = rng.standard_normal(out_shape)
    g_state = tuple(rng.standard_normal(shape) for shape in state_shapes(layer, x.shape[:-2]))
    module.zero_grad()
    expected = run_torch(torch, module, x, state0, lengths, g_out, g_state)
    got = run_ours(layer, x, state0, lengths, g_out, g_state)
    for name, theirs in expected.items():
        assert len(got[name]) == len(theirs), name
        for part, (a, b) in enumerate(zip(got[name], theirs)):
            np.testing.assert_allclose(a, b, rtol=0, atol=ATOL, err_msg=f"{name}[{part}]")
    assert_param_grads_match(module, layer)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [None, MIXED_LENGTHS], ids=["equal", "mixed"])
@pytest.mark.parametrize("random_state", [False, True], ids=["zero_state", "random_state"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_parity_with_torch(torch, rng, kind, num_layers, bidirectional, lengths, random_state, bias):
    module = torch_module(torch, kind, num_layers, bidirectional, bias=bias)
    layer = make_layer(kind, num_layers, bidirectional, seed=3, bias=bias)
    load_torch_state_dict(layer, module.state_dict())
    x = rng.standard_normal((B, T, D))
    state0 = None
    if random_state:
        state0 = tuple(rng.standard_normal(shape) for shape in state_shapes(layer, (B,)))
        state0 = state0 if len(state0) > 1 else state0[0]
    assert_parity(torch, module, layer, x, state0, lengths, rng)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_to_torch_module_matches_the_layer(torch, rng, kind, bias):
    layer = make_layer(kind, 2, True, seed=4, bias=bias)
    module = to_torch_module(layer)
    per_run = (4 if bias else 2) + (kind == "lstm_proj")  # weights, biases, weight_hr
    assert module.bias is bias and len(list(module.parameters())) == 4 * per_run
    assert module.proj_size == (P if kind == "lstm_proj" else 0)
    assert isinstance(module, torch_class(torch, kind))
    assert module.batch_first and module.bidirectional and module.num_layers == 2
    assert module.weight_ih_l0.dtype == torch.float64
    assert_parity(torch, module, layer, rng.standard_normal((B, T, D)), None, MIXED_LENGTHS, rng)


def test_to_torch_module_keeps_float32(torch):
    layer = SimpleRNN(D, H, nonlinearity="relu", dtype=np.float32, rng=0)
    module = to_torch_module(layer)
    assert module.weight_hh_l0.dtype == torch.float32 and module.nonlinearity == "relu"
    np.testing.assert_array_equal(module.weight_hh_l0.detach().numpy(), layer.params["R"].T)


def test_dropout_layer_in_eval_mode_matches_torch(torch, rng):
    layer = make_layer("lstm", 2, True, seed=5, dropout=0.5).eval()
    module = to_torch_module(layer)
    assert module.dropout == 0.5 and not module.training
    state0 = (rng.standard_normal((4, B, H)), rng.standard_normal((4, B, H)))
    assert_parity(torch, module, layer, rng.standard_normal((B, T, D)), state0, None, rng)


def test_unbatched_input_matches_torch(torch, rng):
    module = torch_module(torch, "gru", 2, True)
    layer = make_layer("gru", 2, True)
    load_torch_state_dict(layer, module.state_dict())
    assert_parity(torch, module, layer, rng.standard_normal((T, D)), rng.standard_normal((4, H)), None, rng)


# ---------------------------------------------------------------- refusals
class NoTorchCell(ElmanCell):
    torch_equivalent = None


NO_TORCH = [
    (lambda: LSTM(D, H, peepholes=True, rng=0), "torch has no layer.*no peephole connections"),
    (lambda: GRU(D, H, reset_after=False, rng=0), "torch has no layer.*reset gate after the recurrent matmul only"),
    (lambda: Recurrent(D, H, cell=NoTorchCell, rng=0), "torch has no layer.*NoTorchCell declares no torch_equivalent"),
    (lambda: GRU(D, H, bidirectional=True, merge_mode="ave", rng=0), "torch has no layer.*no merge_mode='ave'"),
    (lambda: SimpleRNN(D, H, go_backwards=True, rng=0), "torch has no layer.*no go_backwards=True"),
    (lambda: LSTM(D, H, zoneout=(0.1, 0.5), rng=0), r"torch has no layer.*no zoneout=\(0.1, 0.5\)"),
]


@pytest.mark.parametrize("make, message", NO_TORCH, ids=["peepholes", "reset_before", "custom_cell", "merge_mode",
                                                         "go_backwards", "zoneout"])
@pytest.mark.parametrize("convert", [to_torch_state_dict, to_torch_module, lambda layer: load_torch_state_dict(layer, {})],
                         ids=["to_torch_state_dict", "to_torch_module", "load_torch_state_dict"])
def test_layers_without_a_torch_equivalent_are_refused(make, message, convert):
    with pytest.raises(ValueError, match=message):
        convert(make())


@pytest.mark.parametrize("option", ["input_dropout", "recurrent_dropout"])
def test_dropout_inside_a_layer_converts_its_weights_but_no_torch_module(option):
    layer = LSTM(D, H, rng=0, **{option: 0.25})
    plain = LSTM(D, H, rng=0)
    for key, value in to_torch_state_dict(plain).items():  # evaluation is torch's maths: the weights carry over
        np.testing.assert_array_equal(to_torch_state_dict(layer)[key], value)
    with pytest.raises(ValueError, match=f"to_torch_module: torch has no layer.*no {option}=0.25"):
        to_torch_module(layer)


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_merge_modes_and_go_backwards_match_torch_on_the_same_weights(merge_mode, go_backwards, torch):
    """torch's bidirectional concat output, halves merged; go_backwards: torch on the reversed input."""
    x = np.random.default_rng(0).standard_normal((B, T, D))
    layer = GRU(D, H, bidirectional=True, merge_mode=merge_mode, go_backwards=go_backwards, rng=0)
    module = to_torch_module(GRU(D, H, bidirectional=True, rng=0))
    out, h_n = layer.forward(x)
    t_out, t_h = module(torch.from_numpy(np.ascontiguousarray(x[:, ::-1] if go_backwards else x)))
    forward, reverse = np.split(t_out.detach().numpy(), 2, axis=-1)
    merged = {"sum": forward + reverse, "mul": forward * reverse, "ave": (forward + reverse) / 2}[merge_mode]
    np.testing.assert_allclose(out, merged, rtol=0, atol=1e-14)
    np.testing.assert_allclose(h_n, t_h.detach().numpy(), rtol=0, atol=1e-14)


def test_non_recurrent_layers_are_refused():
    with pytest.raises(TypeError, match=r"to_torch_state_dict: expected a recurrent layer .*got Linear"):
        to_torch_state_dict(Linear(D, H, rng=0))


def test_converting_arrays_with_other_keys_is_refused():
    layer = make_layer("gru")
    arrays = {key: value for key, value in layer.grads.items() if key != "b_hn"}
    with pytest.raises(ValueError, match=r"arrays does not match the layer: missing keys \['b_hn'\], unexpected keys \[\]"):
        to_torch_state_dict(layer, arrays)


def _missing(sd):
    del sd["bias_hh_l1_reverse"]


def _extra(sd):
    sd["weight_hr_l0"] = np.zeros((H, H))


def _shape(sd):
    sd["bias_hh_l1_reverse"] = np.zeros(3 * H + 1)


def _dtype(sd):
    sd["bias_hh_l1_reverse"] = sd["bias_hh_l1_reverse"].astype(np.float32)


BAD_STATE_DICTS = [
    (_missing, ValueError, r"missing keys \['bias_hh_l1_reverse'\], unexpected keys \[\]"),
    (_extra, ValueError, r"missing keys \[\], unexpected keys \['weight_hr_l0'\]"),
    (_shape, ValueError, r"expected bias_hh_l1_reverse of shape \(15,\), got \(16,\)"),
    (_dtype, TypeError, r"expected bias_hh_l1_reverse of dtype float64 \(the layer's dtype\), got float32"),
]


@pytest.mark.parametrize("spoil, error, message", BAD_STATE_DICTS, ids=["missing", "extra", "shape", "dtype"])
def test_bad_state_dicts_are_refused_and_change_nothing(spoil, error, message):
    layer = make_layer("gru", 2, True, seed=6)
    before = snapshot(layer)
    state_dict = to_torch_state_dict(make_layer("gru", 2, True, seed=7))
    spoil(state_dict)  # the last key is spoilt: every other one would be copied first
    with pytest.raises(error, match="load_torch_state_dict: .*" + message):
        load_torch_state_dict(layer, state_dict)
    assert_params_equal(layer, before)


def test_a_non_mapping_state_dict_is_refused():
    with pytest.raises(TypeError, match="expected state_dict to be a mapping.*got list"):
        load_torch_state_dict(make_layer("lstm"), [])


def test_float32_tensors_into_a_float64_layer_are_refused(torch):
    module = torch.nn.LSTM(D, H, batch_first=True)
    with pytest.raises(TypeError, match="expected weight_ih_l0 of dtype float64 .*got float32"):
        load_torch_state_dict(make_layer("lstm"), module.state_dict())


def test_loading_never_aliases_the_callers_arrays(torch):
    layer = make_layer("rnn_tanh", 2, True)
    arrays_before = {key: value for key, value in layer.params.items()}
    state_dict = to_torch_state_dict(make_layer("rnn_tanh", 2, True, seed=8))
    load_torch_state_dict(layer, state_dict)
    loaded = snapshot(layer)
    for value in state_dict.values():
        value += 1.0
    assert_params_equal(layer, loaded)
    module = torch_module(torch, "rnn_tanh", 2, True)
    load_torch_state_dict(layer, module.state_dict())
    loaded = snapshot(layer)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    assert_params_equal(layer, loaded)
    assert all(layer.params[key] is value for key, value in arrays_before.items())  # updated in place


def test_state_dict_conversion_works_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now fails
    layer = make_layer("lstm", 2, True)
    load_torch_state_dict(layer, to_torch_state_dict(make_layer("lstm", 2, True, seed=9)))
    with pytest.raises(ImportError):
        to_torch_module(layer)


# ---------------------------------------------------------------- projections
def test_projections_have_torchs_names_order_and_layout(torch):
    layer = make_layer("lstm_proj", 2, True)
    state_dict = to_torch_state_dict(layer)
    assert list(state_dict) == list(torch_module(torch, "lstm_proj", 2, True).state_dict())
    np.testing.assert_array_equal(state_dict["weight_hr_l1_reverse"], layer.params["l1_reverse.W_hr"].T)
    assert state_dict["weight_hr_l0"].shape == (P, H) and state_dict["weight_hh_l0"].shape == (4 * H, P)
    assert state_dict["weight_ih_l1"].shape == (4 * H, 2 * P)


def test_a_projection_of_another_width_is_refused_and_changes_nothing(torch):
    layer = make_layer("lstm_proj")
    before = snapshot(layer)
    module = torch.nn.LSTM(D, H, proj_size=P + 1, batch_first=True, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"load_torch_state_dict: expected weight_hh_l0 of shape \(20, 2\), got \(20, 3\)"):
        load_torch_state_dict(layer, module.state_dict())
    assert_params_equal(layer, before)
