"""numpy-rnn: recurrent networks in NumPy alone, with exact, checked BPTT gradients."""
from .cells import Cell, ElmanCell, GRUCell, LSTMCell
from .gradcheck import gradient_check
from .layers import GRU, LSTM, Linear, Recurrent, SimpleRNN
from .models import RNN

__version__ = "0.1.0"

__all__ = ["Cell", "ElmanCell", "GRU", "GRUCell", "LSTM", "LSTMCell", "Linear", "RNN", "Recurrent", "SimpleRNN", "gradient_check"]
