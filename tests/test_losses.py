"""Losses: numerical gradients, parity with torch, masking, stability and input checks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpy_rnn.losses import LOSSES, bce_with_logits, get_loss, mse, softmax_cross_entropy

B, T, K = 3, 5, 4  # all different; C = K classes for cross-entropy
LENGTHS = np.array([2, 5, 1])  # partial, full and single-step sequences, unsorted


def make_inputs(loss, shape, rng):
    """A prediction of ``shape`` and a valid target for ``loss``."""
    pred = rng.normal(size=shape) * 2
    if loss is softmax_cross_entropy:
        return pred, rng.integers(0, shape[-1], size=shape[:-1])
    if loss is bce_with_logits:
        return pred, rng.uniform(size=shape)
    return pred, rng.normal(size=shape)


def numerical_grad(f, x, eps=1e-6):
    """Central differences of the scalar ``f`` at every element of ``x``."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def rel_error(a, b):
    """|a - b| / max(|a|, |b|) with whole-array L2 norms (0 when both are 0)."""
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


ALL_LOSSES = [mse, softmax_cross_entropy, bce_with_logits]
SHAPES = [((B, K), None), ((B, T, K), None), ((B, T, K), LENGTHS), ((1, 1, 1), np.array([1])), ((B, 1), None)]


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape, lengths", SHAPES)
def test_gradient_matches_central_differences(loss, reduction, shape, lengths, rng):
    pred, target = make_inputs(loss, shape, rng)
    value, grad = loss(pred, target, reduction=reduction, lengths=lengths)
    numeric = numerical_grad(lambda p: loss(p, target, reduction=reduction, lengths=lengths)[0], pred.copy())
    assert isinstance(value, float)
    assert grad.shape == pred.shape and grad.dtype == pred.dtype
    assert rel_error(grad, numeric) <= 1e-7


def torch_loss(torch, loss, pred, target, reduction, lengths):
    """The same loss by torch on the valid steps only, with its gradient scattered back."""
    F = torch.nn.functional
    pred_t = torch.tensor(pred, requires_grad=True)
    target_t = torch.tensor(target)
    valid = np.ones(pred.shape[:-1], bool) if lengths is None else np.arange(pred.shape[1]) < lengths[:, None]
    p, y = pred_t[torch.tensor(valid)], target_t[torch.tensor(valid)]
    fn = {mse: F.mse_loss, softmax_cross_entropy: F.cross_entropy,
          bce_with_logits: F.binary_cross_entropy_with_logits}[loss]
    value = fn(p, y, reduction=reduction)
    value.backward()
    return value.item(), pred_t.grad.numpy()


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape, lengths", SHAPES)
def test_matches_torch(torch, loss, reduction, shape, lengths, rng):
    pred, target = make_inputs(loss, shape, rng)
    value, grad = loss(pred, target, reduction=reduction, lengths=lengths)
    expected, expected_grad = torch_loss(torch, loss, pred, target, reduction, lengths)
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_masked_steps_are_unused_and_get_zero_gradient(loss, rng):
    pred, target = make_inputs(loss, (B, T, K), rng)
    masked = np.arange(T) >= LENGTHS[:, None]
    value, grad = loss(pred, target, lengths=LENGTHS)
    assert np.all(grad[masked] == 0) and np.all(grad[~masked] != 0)
    pred[masked] = np.nan  # padding may hold anything, even NaN or an out-of-range class
    target[masked] = -1 if loss is softmax_cross_entropy else np.nan
    value2, grad2 = loss(pred, target, lengths=LENGTHS)
    assert value2 == value and np.array_equal(grad2, grad)


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_mean_averages_over_valid_elements_only(loss, rng):
    pred, target = make_inputs(loss, (B, T, K), rng)
    total, grad_sum = loss(pred, target, reduction="sum", lengths=LENGTHS)
    mean, grad_mean = loss(pred, target, reduction="mean", lengths=LENGTHS)
    count = LENGTHS.sum() * (1 if loss is softmax_cross_entropy else K)
    np.testing.assert_allclose(mean, total / count, rtol=1e-14)
    np.testing.assert_allclose(grad_mean, grad_sum / count, rtol=1e-14)


def test_extreme_logits_cross_entropy(torch):
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]])
    target = np.array([1, 0])
    value, grad = softmax_cross_entropy(logits, target, reduction="sum")
    assert value == 2000.0 + (2000.0 + np.log(2))
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[1, -1, 0], [-1, 0.5, 0.5]], rtol=1e-15)
    expected, expected_grad = torch_loss(torch, softmax_cross_entropy, logits, target, "sum", None)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)


def test_extreme_logits_bce(torch):
    logits = np.array([[1000.0, -1000.0, 1000.0, -1000.0]])
    target = np.array([[0.0, 1.0, 1.0, 0.0]])
    value, grad = bce_with_logits(logits, target, reduction="sum")
    assert value == 2000.0
    np.testing.assert_array_equal(grad, [[1, -1, 0, 0]])
    expected, expected_grad = torch_loss(torch, bce_with_logits, logits, target, "sum", None)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_float32_stays_float32_and_inputs_are_not_modified(loss, rng):
    pred, target = make_inputs(loss, (B, T, K), rng)
    pred = pred.astype(np.float32)
    target = target if loss is softmax_cross_entropy else target.astype(np.float32)
    pred_copy, target_copy = pred.copy(), target.copy()
    target64 = target if loss is softmax_cross_entropy else target.astype(np.float64)
    value64, grad64 = loss(pred.astype(np.float64), target64, lengths=LENGTHS)
    value, grad = loss(pred, target, lengths=LENGTHS)
    assert grad.dtype == np.float32 and isinstance(value, float)
    np.testing.assert_allclose(grad, grad64, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(value, value64, rtol=1e-5)
    assert np.array_equal(pred, pred_copy) and np.array_equal(target, target_copy)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), steps=st.integers(1, 6), size=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_masked_loss_equals_loss_on_valid_steps(batch, steps, size, seed):
    rng = np.random.default_rng(seed)
    for loss in ALL_LOSSES:
        pred, target = make_inputs(loss, (batch, steps, size), rng)
        lengths = rng.integers(1, steps + 1, size=batch)
        valid = np.arange(steps) < lengths[:, None]
        value, grad = loss(pred, target, lengths=lengths)
        # the valid steps stacked as a sequence-to-one batch (N, size)
        flat_value, flat_grad = loss(pred[valid], target[valid])
        np.testing.assert_allclose(value, flat_value, rtol=1e-13)
        np.testing.assert_allclose(grad[valid], flat_grad, rtol=1e-13)


def test_registry():
    assert LOSSES == {"mse": mse, "cross_entropy": softmax_cross_entropy, "bce": bce_with_logits}
    assert get_loss("bce") is bce_with_logits
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; valid names: mse, cross_entropy, bce"):
        get_loss("hinge")
    with pytest.raises(TypeError, match="get_loss: expected the loss name to be a str, got int"):
        get_loss(1)


X2 = np.zeros((B, K))
X3 = np.zeros((B, T, K))
CLASSES = np.zeros((B, T), dtype=int)
BAD_INPUTS = [
    (mse, X2.astype(int), X2, {},
     TypeError, r"mse: expected pred to be a float32 or float64 ndarray, got ndarray of dtype int"),
    (mse, X2.tolist(), X2, {}, TypeError, r"mse: expected pred to be a float32 or float64 ndarray, got list"),
    (mse, np.zeros(B), np.zeros(B), {},
     ValueError, r"mse: expected a non-empty pred of shape \(B, K\) or \(B, T, K\), got \(3,\)"),
    (mse, np.zeros((0, K)), np.zeros((0, K)), {}, ValueError, r"non-empty pred .* got \(0, 4\)"),
    (mse, X2, np.zeros((B, 1)), {}, ValueError, r"mse: expected target of shape \(3, 4\), got \(3, 1\)"),
    (mse, X2, X2.astype(np.float32), {},
     TypeError, r"mse: expected target of dtype float64 \(as the prediction\), got float32"),
    (mse, X2, X2, {"reduction": "avg"}, ValueError, r"mse: expected reduction in \('mean', 'sum'\), got 'avg'"),
    (mse, X2, X2, {"lengths": [1, 1, 1]},
     ValueError, r"mse: lengths needs per-step predictions of shape \(B, T, K\), got \(3, 4\)"),
    (mse, X3, X3, {"lengths": [1.0, 2.0, 3.0]},
     TypeError, r"mse: expected lengths of an integer dtype, got dtype float64"),
    (mse, X3, X3, {"lengths": [1, 2]}, ValueError, r"mse: expected lengths of shape \(3,\), got \(2,\)"),
    (mse, X3, X3, {"lengths": [0, 2, 5]},
     ValueError, r"mse: expected every length in \[1, 5\] .* got min 0 and max 5"),
    (mse, X3, X3, {"lengths": [1, 2, 6]},
     ValueError, r"mse: expected every length in \[1, 5\] .* got min 1 and max 6"),
    (softmax_cross_entropy, X3, CLASSES.astype(float), {}, TypeError,
     r"softmax_cross_entropy: expected target of an integer dtype \(class indices\), got float64"),
    (softmax_cross_entropy, X3, CLASSES[:, :2], {}, ValueError,
     r"softmax_cross_entropy: expected target of shape \(3, 5\) for logits of shape \(3, 5, 4\), got \(3, 2\)"),
    (softmax_cross_entropy, X3, CLASSES + 4, {}, ValueError,
     r"softmax_cross_entropy: expected target classes in \[0, 3\] \(C = 4\), got min 4 and max 4"),
    (softmax_cross_entropy, X3, CLASSES - 1, {"lengths": [5, 1, 1]}, ValueError, r"got min -1 and max -1"),
    (softmax_cross_entropy, X2.astype(np.float16), CLASSES[:, 0], {}, TypeError,
     r"expected logits to be a float32 or float64 ndarray, got ndarray of dtype float16"),
    (bce_with_logits, X2, X2 + 1.5, {},
     ValueError, r"bce_with_logits: expected target values in \[0, 1\], got min 1.5 and max 1.5"),
    (bce_with_logits, X2, X2.astype(bool), {}, TypeError, r"bce_with_logits: expected target of dtype float64"),
]


@pytest.mark.parametrize("loss, pred, target, kwargs, exc, match", BAD_INPUTS)
def test_bad_inputs_raise(loss, pred, target, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        loss(pred, target, **kwargs)
