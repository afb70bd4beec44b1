"""Optimizers, schedules and clipping: parity with torch.optim, state round trips, input checks."""
import io
import math

import numpy as np
import pytest

from numpy_rnn.optim import (
    OPTIMIZERS,
    SGD,
    Adagrad,
    Adam,
    AdamW,
    CosineLR,
    RMSprop,
    StepLR,
    WarmupLR,
    clip_grad_norm,
    clip_grad_value,
    get_optimizer,
    l2_norm,
)

SHAPES = {"layers.0.W": (3, 5), "layers.0.b": (5,), "V": (5, 2)}
STEPS = 20

CONFIGS = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (SGD, {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1}),
    (Adam, {}),
    (Adam, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    (AdamW, {}),
    (AdamW, {"lr": 0.01, "betas": (0.5, 0.9), "weight_decay": 0.3}),
    (RMSprop, {}),
    (RMSprop, {"momentum": 0.9, "weight_decay": 0.1}),
    (RMSprop, {"centered": True}),
    (RMSprop, {"alpha": 0.9, "centered": True, "momentum": 0.5}),
    (Adagrad, {}),
    (Adagrad, {"lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.1, "eps": 1e-8}),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for cls, kw in CONFIGS]


def make_params(rng, dtype=np.float64):
    return {name: rng.normal(size=shape).astype(dtype) for name, shape in SHAPES.items()}


def make_grads(rng, steps=STEPS, dtype=np.float64):
    return [{name: rng.normal(size=shape).astype(dtype) for name, shape in SHAPES.items()} for _ in range(steps)]


def run(cls, kwargs, params, grads):
    opt = cls(params, **kwargs)
    for g in grads:
        opt.step(g)
    return opt


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=IDS)
def test_matches_torch_every_step(torch, cls, kwargs, rng):
    params, grads = make_params(rng), make_grads(rng)
    tparams = {name: torch.tensor(p.copy(), requires_grad=True) for name, p in params.items()}
    topt = getattr(torch.optim, cls.__name__)(list(tparams.values()), foreach=False, **kwargs)
    opt = cls(params, **kwargs)
    for g in grads:
        opt.step(g)
        for name, t in tparams.items():
            t.grad = torch.tensor(g[name])
        topt.step()
        for name, t in tparams.items():
            expected = t.detach().numpy()
            # relative to the array's scale: torch fuses p + alpha g (FMA), NumPy rounds twice, and
            # an element crossing zero would make a per-element relative error meaningless
            scale = np.abs(expected).max()
            np.testing.assert_allclose(params[name], expected, rtol=1e-12, atol=1e-12 * scale, err_msg=name)


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=IDS)
def test_updates_params_in_place_and_never_grads(cls, kwargs, rng):
    params, grads = make_params(rng), make_grads(rng, steps=3)
    arrays, before = dict(params), {k: v.copy() for k, v in params.items()}
    saved = [{k: v.copy() for k, v in g.items()} for g in grads]
    run(cls, kwargs, params, grads)
    for name in params:
        assert params[name] is arrays[name] and not np.array_equal(params[name], before[name])
    for g, s in zip(grads, saved):
        assert all(np.array_equal(g[k], s[k]) for k in g)


def flatten(tree, prefix=""):
    """A nested dict as {"a/b": ndarray}, as np.savez stores it."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[prefix + key] = np.asarray(value)
    return flat


def unflatten(flat):
    tree = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value.item() if value.ndim == 0 else value
    return tree


def through_npz(state):
    """Store ``state`` with np.savez and read it back without pickle."""
    buffer = io.BytesIO()
    np.savez(buffer, **flatten(state))
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        return unflatten({k: data[k] for k in data.files})


def assert_plain(tree):
    for value in tree.values():
        if isinstance(value, dict):
            assert_plain(value)
        else:
            assert isinstance(value, (str, bool, int, float, np.ndarray)), type(value)


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=IDS)
def test_state_dict_round_trip_is_bit_exact(cls, kwargs, rng):
    start, grads = make_params(rng), make_grads(rng)
    straight = {k: v.copy() for k, v in start.items()}
    run(cls, kwargs, straight, grads)

    first = {k: v.copy() for k, v in start.items()}
    state = run(cls, kwargs, first, grads[:10]).state_dict()
    assert_plain(state)
    assert state["type"] == cls.__name__ and state["step"] == 10
    resumed = {k: v.copy() for k, v in first.items()}
    other = {**kwargs, "lr": 0.5}  # the hyper-parameters come from the state_dict
    opt = cls(resumed, **other)
    opt.load_state_dict(through_npz(state))
    assert opt.lr == state["hyper"]["lr"]
    for g in grads[10:]:
        opt.step(g)
    for name in start:
        assert np.array_equal(resumed[name], straight[name]), name


def test_state_dict_is_a_copy_and_keyed_by_name(rng):
    params = make_params(rng)
    opt = run(Adam, {}, params, make_grads(rng, steps=2))
    state = opt.state_dict()
    assert state["hyper"] == {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    assert set(state["state"]) == set(SHAPES) and set(state["state"]["V"]) == {"exp_avg", "exp_avg_sq"}
    saved = state["state"]["V"]["exp_avg"].copy()
    opt.step(make_grads(rng, steps=1)[0])
    assert np.array_equal(state["state"]["V"]["exp_avg"], saved)


def test_sgd_momentum_state_follows_loaded_hyper(rng):
    params, grads = make_params(rng), make_grads(rng, steps=3)
    state = run(SGD, {"lr": 0.1, "momentum": 0.9}, {k: v.copy() for k, v in params.items()}, grads).state_dict()
    opt = SGD(params, lr=0.1)
    opt.load_state_dict(state)
    assert opt.hyper["momentum"] == 0.9 and set(opt.state["V"]) == {"momentum_buffer"}


def bad_state(rng, change):
    state = run(Adam, {}, make_params(rng), make_grads(rng, steps=1)).state_dict()
    change(state)
    return state


BAD_STATES = [
    (lambda s: s.update(type="SGD"), ValueError, r"Adam: expected a state_dict of type 'Adam', got 'SGD'"),
    (lambda s: s.pop("step"), ValueError, r"Adam: state_dict keys differ: missing \['step'\], unexpected \[\]"),
    (lambda s: s.update(step=-1), ValueError, r"Adam: expected state_dict\['step'\] >= 0, got -1"),
    (lambda s: s["hyper"].update(amsgrad=True),
     ValueError, r"state_dict\['hyper'\] keys differ: missing \[\], unexpected \['amsgrad'\]"),
    (lambda s: s["hyper"].update(beta2=1.0),
     ValueError, r"Adam: expected betas\[1\] finite and in \[0.0, 1.0\), got 1.0"),
    (lambda s: s["state"].pop("V"),
     ValueError, r"state_dict\['state'\]\['V'\] keys differ: missing \['exp_avg', 'exp_avg_sq'\]"),
    (lambda s: s["state"].update(U={}),
     ValueError, r"state_dict\['state'\] keys differ: missing \[\], unexpected \['U'\]"),
    (lambda s: s["state"]["V"].pop("exp_avg"),
     ValueError, r"state_dict\['state'\]\['V'\] keys differ: missing \['exp_avg'\]"),
    (lambda s: s["state"]["V"].update(exp_avg=np.zeros((2, 5))), ValueError,
     r"expected state_dict\['state'\]\['V'\]\['exp_avg'\] of shape \(5, 2\), got \(2, 5\)"),
    (lambda s: s["state"]["V"].update(exp_avg=np.zeros((5, 2), np.float32)), TypeError,
     r"expected state_dict\['state'\]\['V'\]\['exp_avg'\] to be an ndarray of dtype float64, got dtype float32"),
]


@pytest.mark.parametrize("change, exc, match", BAD_STATES)
def test_load_state_dict_validates_and_changes_nothing_on_error(change, exc, match, rng):
    state = bad_state(rng, change)
    opt = Adam(make_params(rng))
    before = opt.state_dict()
    with pytest.raises(exc, match=match):
        opt.load_state_dict(state)
    after = opt.state_dict()
    assert after["step"] == before["step"] and after["hyper"] == before["hyper"]


def test_float32_params_keep_float32(rng):
    params = make_params(rng, np.float32)
    opt = run(Adam, {"weight_decay": 0.1}, params, make_grads(rng, steps=3, dtype=np.float32))
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(s.dtype == np.float32 for st in opt.state.values() for s in st.values())
    with pytest.raises(
        TypeError, match=r"Adam: expected grads\['layers.0.W'\] to be an ndarray of dtype float32, got dtype float64"
    ):
        opt.step(make_grads(rng, steps=1)[0])


@pytest.mark.parametrize("grads, exc, match", [
    ({"V": np.zeros((5, 2))},
     ValueError, r"SGD: grads keys differ: missing \['layers.0.W', 'layers.0.b'\], unexpected \[\]"),
    ({**{k: np.zeros(s) for k, s in SHAPES.items()}, "extra": np.zeros(1)}, ValueError, r"unexpected \['extra'\]"),
    ({**{k: np.zeros(s) for k, s in SHAPES.items()}, "V": np.zeros((2, 5))}, ValueError,
     r"SGD: expected grads\['V'\] of shape \(5, 2\), got \(2, 5\)"),
    ({**{k: np.zeros(s) for k, s in SHAPES.items()}, "V": [[0.0] * 2] * 5}, TypeError,
     r"SGD: expected grads\['V'\] to be an ndarray of dtype float64, got list"),
    ([np.zeros(1)], TypeError, r"SGD: expected grads to be a dict, got list"),
])
def test_step_checks_grads(grads, exc, match, rng):
    params = make_params(rng)
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(exc, match=match):
        SGD(params, lr=0.1).step(grads)
    assert all(np.array_equal(params[k], before[k]) for k in params)


W = np.zeros((2, 2))
BAD_HYPER = [
    (lambda: SGD({"W": W}, lr=0.0), ValueError, r"SGD: expected lr > 0, got 0.0"),
    (lambda: SGD({"W": W}, lr=-1.0), ValueError, r"SGD: expected lr finite and in \[0.0, inf\), got -1.0"),
    (lambda: SGD({"W": W}, lr=math.nan), ValueError, r"SGD: expected lr finite .* got nan"),
    (lambda: Adam({"W": W}, lr=math.inf), ValueError, r"Adam: expected lr finite .* got inf"),
    (lambda: SGD({"W": W}, lr="0.1"), TypeError, r"SGD: expected lr to be a real number, got str '0.1'"),
    (lambda: SGD({"W": W}, lr=True), TypeError, r"SGD: expected lr to be a real number, got bool True"),
    (lambda: SGD({"W": W}, lr=0.1, momentum=-0.1),
     ValueError, r"SGD: expected momentum finite and in \[0.0, inf\), got -0.1"),
    (lambda: SGD({"W": W}, lr=0.1, nesterov=True),
     ValueError, r"SGD: nesterov=True needs momentum > 0 and dampening == 0, got momentum=0.0"),
    (lambda: SGD({"W": W}, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, r"dampening=0.1"),
    (lambda: SGD({"W": W}, lr=0.1, nesterov=1), TypeError, r"SGD: expected nesterov to be a bool, got int 1"),
    (lambda: SGD({"W": W}, lr=0.1, dampening=1.5),
     ValueError, r"SGD: expected dampening finite and in \[0.0, 1.0\], got 1.5"),
    (lambda: SGD({"W": W}, lr=0.1, weight_decay=-1e-4),
     ValueError, r"SGD: expected weight_decay finite and in \[0.0, inf\)"),
    (lambda: Adam({"W": W}, betas=(1.0, 0.999)),
     ValueError, r"Adam: expected betas\[0\] finite and in \[0.0, 1.0\), got 1.0"),
    (lambda: AdamW({"W": W}, betas=(0.9, -0.1)),
     ValueError, r"AdamW: expected betas\[1\] finite and in \[0.0, 1.0\), got -0.1"),
    (lambda: Adam({"W": W}, betas=0.9), TypeError, r"Adam: expected betas to be a pair \(beta1, beta2\), got 0.9"),
    (lambda: Adam({"W": W}, eps=0.0), ValueError, r"Adam: expected eps finite and in \(0.0, inf\), got 0.0"),
    (lambda: AdamW({"W": W}, weight_decay=-0.01),
     ValueError, r"AdamW: expected weight_decay finite and in \[0.0, inf\), got -0.01"),
    (lambda: RMSprop({"W": W}, alpha=1.0),
     ValueError, r"RMSprop: expected alpha finite and in \[0.0, 1.0\), got 1.0"),
    (lambda: RMSprop({"W": W}, momentum=-1),
     ValueError, r"RMSprop: expected momentum finite and in \[0.0, inf\), got -1.0"),
    (lambda: RMSprop({"W": W}, centered="yes"), TypeError, r"RMSprop: expected centered to be a bool, got str 'yes'"),
    (lambda: Adagrad({"W": W}, lr_decay=-0.1),
     ValueError, r"Adagrad: expected lr_decay finite and in \[0.0, inf\), got -0.1"),
    (lambda: Adagrad({"W": W}, initial_accumulator_value=-1),
     ValueError, r"Adagrad: expected initial_accumulator_value finite"),
    (lambda: Adagrad({"W": W}, eps=-1e-10),
     ValueError, r"Adagrad: expected eps finite and in \(0.0, inf\), got -1e-10"),
    (lambda: SGD([W], lr=0.1), TypeError, r"SGD: expected params to be a dict\[str, ndarray\], got list"),
    (lambda: SGD({}, lr=0.1), ValueError, r"SGD: expected a non-empty params dict, got \{\}"),
    (lambda: SGD({0: W}, lr=0.1), TypeError, r"SGD: expected params keys to be str, got int 0"),
    (lambda: SGD({"W": W.astype(int)}, lr=0.1), TypeError,
     r"SGD: expected params\['W'\] to be a float32 or float64 ndarray, got ndarray of dtype int64"),
    (lambda: SGD({"W": np.broadcast_to(0.0, (2, 2))}, lr=0.1), ValueError,
     r"SGD: expected params\['W'\] to be writeable, got a read-only array"),
    (lambda: SGD({"W": W, "tied": W}, lr=0.1),
     ValueError, r"SGD: params\['tied'\] is the same array as params\['W'\]"),
]


@pytest.mark.parametrize("make, exc, match", BAD_HYPER)
def test_bad_hyper_parameters_raise(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_lr_setter():
    opt = Adam({"W": np.zeros(2)})
    opt.lr = 0  # a schedule may reach zero
    assert opt.lr == 0.0 and isinstance(opt.lr, float)
    with pytest.raises(ValueError, match=r"Adam: expected lr finite and in \[0.0, inf\), got -0.1"):
        opt.lr = -0.1
    with pytest.raises(TypeError, match="Adam: expected lr to be a real number, got NoneType"):
        opt.lr = None


def test_registry(rng):
    assert OPTIMIZERS == {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}
    opt = get_optimizer("rmsprop", make_params(rng), lr=0.1, centered=True)
    assert isinstance(opt, RMSprop) and opt.lr == 0.1 and opt.hyper["centered"]
    with pytest.raises(
        ValueError, match="unknown optimizer 'lbfgs'; valid names: sgd, adam, adamw, rmsprop, adagrad"
    ):
        get_optimizer("lbfgs", make_params(rng))
    with pytest.raises(TypeError, match="get_optimizer: expected the optimizer name to be a str, got ABCMeta"):
        get_optimizer(SGD, make_params(rng))


# ---- schedules ---------------------------------------------------------------------------


def torch_lrs(torch, make_scheduler, steps, lr=0.1):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_scheduler(torch.optim.lr_scheduler, opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def our_lrs(make_scheduler, steps, lr=0.1):
    opt = SGD({"W": np.zeros(1)}, lr=lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.lr)
        sched.step()
    return lrs


SCHEDULES = {
    "step": (lambda o: StepLR(o, 3, gamma=0.5), lambda s, o: s.StepLR(o, 3, gamma=0.5)),
    "cosine": (lambda o: CosineLR(o, 10, min_lr=1e-3), lambda s, o: s.CosineAnnealingLR(o, T_max=10, eta_min=1e-3)),
    "cosine-to-zero": (lambda o: CosineLR(o, 7), lambda s, o: s.CosineAnnealingLR(o, T_max=7)),
    "warmup": (lambda o: WarmupLR(o, 4), lambda s, o: s.LinearLR(o, start_factor=1 / 4, total_iters=4)),
    "warmup-then-cosine": (
        lambda o: WarmupLR(o, 4, after=CosineLR(o, 10, min_lr=1e-3)),
        lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=1 / 4, total_iters=4),
                                        s.CosineAnnealingLR(o, T_max=10, eta_min=1e-3)], milestones=[4]),
    ),
    "warmup-then-step": (
        lambda o: WarmupLR(o, 3, after=StepLR(o, 2, gamma=0.3)),
        lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=1 / 3, total_iters=3),
                                        s.StepLR(o, 2, gamma=0.3)], milestones=[3]),
    ),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_torch(torch, name):
    ours, theirs = SCHEDULES[name]
    np.testing.assert_allclose(our_lrs(ours, 30), torch_lrs(torch, theirs, 30), rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_state_dict_round_trip(name):
    make = SCHEDULES[name][0]
    opt = SGD({"W": np.zeros(1)}, lr=0.1)
    sched = make(opt)
    for _ in range(6):
        sched.step()
    state = sched.state_dict()
    assert_plain(state)
    fresh_opt = SGD({"W": np.zeros(1)}, lr=0.1)
    fresh = make(fresh_opt)
    fresh.load_state_dict(through_npz(state))
    assert fresh_opt.lr == opt.lr
    for _ in range(10):
        sched.step()
        fresh.step()
        assert fresh_opt.lr == opt.lr


def test_schedule_errors():
    opt = SGD({"W": np.zeros(1)}, lr=0.1)
    with pytest.raises(ValueError, match=r"StepLR: expected step_size >= 1, got 0"):
        StepLR(opt, 0)
    with pytest.raises(TypeError, match=r"StepLR: expected step_size to be an int >= 1, got float 2.0"):
        StepLR(opt, 2.0)
    with pytest.raises(ValueError, match=r"StepLR: expected gamma finite and in \(0.0, inf\), got 0.0"):
        StepLR(opt, 2, gamma=0)
    with pytest.raises(ValueError, match=r"CosineLR: expected min_lr finite and in \[0.0, inf\), got -1.0"):
        CosineLR(opt, 10, min_lr=-1)
    with pytest.raises(TypeError, match=r"CosineLR: expected an Optimizer, got dict"):
        CosineLR({"W": np.zeros(1)}, 10)
    with pytest.raises(
        ValueError, match=r"WarmupLR: expected after to be a new schedule \(last_step 0\) of the same optimizer"
    ):
        WarmupLR(opt, 3, after=CosineLR(SGD({"W": np.zeros(1)}, lr=0.1), 10))
    with pytest.raises(TypeError, match=r"WarmupLR: expected after to be an LRScheduler or None, got str"):
        WarmupLR(opt, 3, after="cosine")
    with pytest.raises(ValueError, match=r"StepLR: expected hyper \{'step_size': 3, 'gamma': 0.1\}, got"):
        StepLR(opt, 3).load_state_dict(StepLR(opt, 4).state_dict())
    with pytest.raises(ValueError, match=r"CosineLR: expected a state_dict of type 'CosineLR', got 'StepLR'"):
        CosineLR(opt, 3).load_state_dict({**StepLR(opt, 3).state_dict(), "hyper": {"total_steps": 3, "min_lr": 0.0}})


# ---- clipping ----------------------------------------------------------------------------


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(torch, max_norm, rng):
    grads = make_grads(rng, steps=1)[0]
    tensors = [torch.tensor(g.copy(), requires_grad=True) for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g.copy())
    expected = torch.nn.utils.clip_grad_norm_(tensors, max_norm, foreach=False).item()
    arrays = dict(grads)
    before = {k: v.copy() for k, v in grads.items()}
    norm = clip_grad_norm(grads, max_norm)
    assert isinstance(norm, float)
    np.testing.assert_allclose(norm, expected, rtol=1e-12)
    for (name, g), t in zip(grads.items(), tensors):
        assert g is arrays[name]  # in place
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=0)
    if max_norm > norm:
        assert all(np.array_equal(grads[k], before[k]) for k in grads)
    else:
        total = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        assert max_norm - 1e-5 < total <= max_norm


def test_clip_grad_value_matches_torch(torch, rng):
    grads = make_grads(rng, steps=1)[0]
    tensors = [torch.tensor(g.copy(), requires_grad=True) for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g.copy())
    torch.nn.utils.clip_grad_value_(tensors, 0.7, foreach=False)
    arrays = dict(grads)
    assert clip_grad_value(grads, 0.7) is None
    for (name, g), t in zip(grads.items(), tensors):
        assert g is arrays[name] and np.abs(g).max() <= 0.7
        np.testing.assert_array_equal(g, t.grad.numpy())


def test_clip_errors_and_non_finite_norm():
    grads = {"W": np.array([3.0, np.inf])}
    assert clip_grad_norm(grads, 1.0) == math.inf
    np.testing.assert_array_equal(grads["W"], [3.0, np.inf])
    with pytest.raises(ValueError, match=r"clip_grad_norm: expected max_norm finite and in \(0.0, inf\), got 0.0"):
        clip_grad_norm(grads, 0.0)
    with pytest.raises(
        ValueError, match=r"clip_grad_value: expected clip_value finite and in \(0.0, inf\), got -1.0"
    ):
        clip_grad_value(grads, -1)
    with pytest.raises(
        TypeError, match=r"clip_grad_norm: expected grads\['W'\] to be a float32 or float64 ndarray, got list"
    ):
        clip_grad_norm({"W": [1.0]}, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_norm_is_numpy_s_to_the_last_bit_and_finite_where_the_squares_overflow(dtype, rng):
    values = rng.standard_normal(1000).astype(dtype)
    assert l2_norm(values) == np.linalg.norm(values) and l2_norm(values).dtype == dtype
    huge = np.full(400, 3e19 if dtype == np.float32 else 1e200, dtype=dtype)  # its squares overflow, not its values
    with np.errstate(over="ignore"):
        assert np.isinf(np.linalg.norm(huge))
    with np.errstate(over="raise"):  # handled: no warning either
        assert l2_norm(huge) == pytest.approx(20 * float(huge[0]), rel=1e-6)
    assert np.isinf(l2_norm(np.array([3.0, np.inf], dtype=dtype))) and np.isnan(l2_norm(np.array([np.nan, 1.0])))


def test_clip_grad_norm_clips_finite_float32_gradients_whose_squares_overflow():
    """float32 squares overflow from about 1.8e19: such gradients are finite, so clipping applies."""
    grads = {"W": np.full((10, 10), 2e19, dtype=np.float32), "b": np.ones(10, dtype=np.float32)}
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(2e20, rel=1e-6)
    assert l2_norm([l2_norm(g) for g in grads.values()]) == pytest.approx(1.0, rel=1e-5)
    assert grads["W"].dtype == np.float32 and np.all(np.isfinite(grads["W"]))
