"""numpy-rnn."""
