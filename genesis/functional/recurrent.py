"""An LSTM layer's time loop as one op (ops/recurrent.py)."""

from __future__ import annotations

from genesis.dispatch import apply
from genesis.ops import recurrent as R


def lstm_layer(pre, h0, c0, w_hh, reverse=False):
    """The hidden and cell states (T, N, H) of an LSTM layer from `pre` (T, N, 4H), the input's
    projection plus both biases at every step, initial states h0, c0 (N, H) and hidden weights w_hh
    (4H, H) in PyTorch's gate order; with `reverse` the steps run from the last to the first."""
    steps, batch, hidden = pre.shape[0], pre.shape[1], w_hh.shape[-1]
    hs, cs, _ = R.parts(apply(R.lstm_layer, pre, h0, c0, w_hh, reverse=bool(reverse)), steps, batch, hidden)
    return hs, cs


__all__ = ["lstm_layer"]
