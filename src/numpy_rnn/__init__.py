"""numpy-rnn: recurrent networks in NumPy alone, with exact, checked BPTT gradients."""
from .cells import Cell, ElmanCell, GRUCell, LSTMCell
from .gradcheck import gradient_check
from .layers import GRU, LSTM, Embedding, Linear, Recurrent, SimpleRNN
from .models import RNN, ModelConfig, SequenceModel
from .module import Module

__version__ = "0.1.0"

__all__ = ["Cell", "ElmanCell", "Embedding", "GRU", "GRUCell", "LSTM", "LSTMCell", "Linear", "ModelConfig", "Module",
           "RNN", "Recurrent", "SequenceModel", "SimpleRNN", "gradient_check"]
