"""REFERENCE CODE FROM THE COURSE NOTEBOOK (shared/seed/000_3c4136c4433c8abd.txt), kept only
as the baseline that ``bench_gradcheck.py`` times. It is not part of numpy-rnn and does not
follow the project's conventions (global ``np.random``, column vectors, transposed gradients,
``np.diag`` derivatives): the point is to measure the notebook's code as it was written.

Changes from the notebook: none in the maths or the loops; its version prints, the comments
of the exercise and an unused ``res =`` are dropped, and long lines are joined.
"""
from typing import Dict

import numpy as np


class RNN(object):
    """Numpy implementation of sequence-to-one recurrent neural network for regression tasks."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super(RNN, self).__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size

        # create and initialize weights of the network
        self.W = np.random.uniform(-0.2, 0.2, size=(self.input_size, self.hidden_size))
        self.R = np.random.uniform(-0.2, 0.2, size=(self.hidden_size, self.hidden_size))
        self.bs = np.zeros((self.hidden_size, 1))
        self.V = np.random.uniform(-0.2, 0.2, size=(self.hidden_size, self.output_size))
        self.by = np.zeros((self.output_size, 1))
        self.reset_parameters()

        # place holder to store intermediates for backprop
        self.a = {0: np.zeros((self.hidden_size, 1))}
        self.y_hat = None
        self.grads = None
        self.x = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = np.expand_dims(x, axis=2)
        for i in range(len(x)):
            s_t = self.W.T @ self.x[i] + self.R.T @ self.a[i] + self.bs
            a_t = np.tanh(s_t)
            self.a[i + 1] = a_t
        self.y_hat = self.V.T @ a_t + self.by
        return self.y_hat

    def backward(self, d_loss: np.ndarray) -> Dict:
        delta_t = np.zeros((1, self.hidden_size))
        dV = np.zeros(self.V.T.shape)
        dby = np.zeros((self.output_size, 1)).T
        dW = np.zeros(self.W.T.shape)
        dR = np.zeros(self.R.T.shape)
        dbs = np.zeros(self.bs.T.shape)
        dV = d_loss @ self.a[len(self.a) - 1].T
        dby += d_loss.T
        for i in reversed(range(1, len(self.a))):
            if i == len(self.a) - 1:
                delta_t = (d_loss.T @ self.V.T + delta_t @ self.R.T) @ np.diag(np.diag(1 - self.a[i] @ self.a[i].T))
            else:
                delta_t = (delta_t @ self.R.T) @ np.diag(np.diag(1 - self.a[i] @ self.a[i].T))
            dW += delta_t.T @ self.x[i - 1].T
            dR += delta_t.T @ self.a[i - 1].T
            dbs += delta_t
        self.grads = {'dW': dW, 'dR': dR, 'dV': dV, 'dbs': dbs, 'dby': dby}
        return self.grads

    def update(self, lr: float):
        if not self.grads:
            raise RuntimeError("You have to call the .backward() function first")
        self.V -= lr * self.grads['dV'].T
        self.W -= lr * self.grads['dW'].T
        self.R -= lr * self.grads['dR'].T
        self.bs -= lr * self.grads['dbs'].T
        self.by -= lr * self.grads['dby'].T
        # reset internal class attributes
        self.grads = {}
        self.y_hat, self.a = None, {0: np.zeros((self.hidden_size, 1))}

    def get_weights(self) -> Dict:
        return {'W': self.W, 'R': self.R, 'V': self.V, 'bs': self.bs, 'by': self.by}

    def set_weights(self, weights: Dict):
        if not all(name in weights.keys() for name in ['W', 'R', 'V']):
            raise ValueError("Missing one of 'W', 'R', 'V' keys in the weight dictionary")
        self.W = weights["W"]
        self.R = weights["R"]
        self.V = weights["V"]
        self.bs = weights["bs"]
        self.by = weights["by"]

    def reset_parameters(self):
        # recurrent weights initialized as identity matrix
        self.R = np.eye(self.hidden_size)
        # input to hidden and hidden to output initialized with LeCun initialization
        gain = np.sqrt(3 / self.input_size)
        self.W = np.random.uniform(-gain, gain, self.W.shape)
        gain = np.sqrt(3 / self.hidden_size)
        self.V = np.random.uniform(-gain, gain, self.V.shape)


def get_numerical_gradient(model: RNN, x: np.ndarray, eps: float = 1e-7) -> Dict:
    """Implementation of the two-sided numerical gradient approximation (the notebook's)."""
    weights = model.get_weights()
    num_grad = {}
    for name_layer, weights_layer in weights.items():  # iterate through each layer
        gradient = np.zeros((weights_layer.shape))
        for i in range(weights_layer.shape[0]):
            for j in range(weights_layer.shape[1]):
                weights_plus = weights.copy()
                weights_min = weights.copy()

                # changing one element in weight layer:
                w_min = np.copy(weights_layer)
                w_min[i, j] = w_min[i, j] - eps

                w_plus = np.copy(weights_layer)
                w_plus[i, j] = w_plus[i, j] + eps

                # computing forward passes for plus and minus epsilons
                weights_min[name_layer] = w_min
                model.set_weights(weights_min)
                forward_min = model.forward(x)

                weights_plus[name_layer] = w_plus
                model.set_weights(weights_plus)
                forward_plus = model.forward(x)

                gradient[i, j] = np.sum((forward_plus - forward_min) / (2 * eps))
        num_grad['d' + name_layer] = gradient.T
    return num_grad


def get_analytical_gradient(model: RNN, x: np.ndarray) -> Dict:
    """Helper function to get the analytical gradient (the notebook's)."""
    e_t = np.ones((model.output_size, 1))
    model.forward(x)
    grads = model.backward(e_t)
    return grads


def gradient_check(model: RNN, x: np.ndarray, treshold: float = 1e-7):
    """Perform gradient checking (the notebook's)."""
    numerical_grads = get_numerical_gradient(model, x)
    analytical_grads = get_analytical_gradient(model, x)
    for key, num_grad in numerical_grads.items():
        difference = np.linalg.norm(num_grad - analytical_grads[key])
        if difference < treshold:
            print(f"Gradient check for {key} passed (difference {difference:.3e})")
        else:
            print(f"Gradient check for {key} failed (difference {difference:.3e})")
