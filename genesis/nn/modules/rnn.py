"""RNN, LSTM, GRU and their cells, with PyTorch's parameters, layouts and numbers.

Parameters carry PyTorch's names and shapes (`weight_ih_l0`, `weight_hh_l0_reverse`, `bias_ih_l1`,
LSTM's `weight_hr_l0` with `proj_size`), registered in PyTorch's order, so a PyTorch `state_dict`
loads as it is. Gates are chunked in PyTorch's order: LSTM (input, forget, cell, output), GRU
(reset, update, new), with GRU's reset gate applied to the hidden state's product plus its bias.

An LSTM layer (without projections) over sequences that all run every step is one op,
`lstm_layer` (ops/recurrent.py): its time loop runs in C, forward and backward, eagerly and in a
compiled program alike. The other layers' time loop is Python over genesis ops.
`genesis.compile` traces it unrolled, one copy of the cell per time step (the sequence length is
part of the input's shape, which the compiled program is specialised on anyway), so the compiler
fuses each step's gates into one kernel. Eagerly it runs step by step the first time, and a layer
called again with the same shapes runs its loop compiled (functional/fused.py): a GRU step is a
few dozen small ops, each a dispatch. Either way the input's projection for all time steps is one
product before the loop; only the hidden state's product runs per step.

A PackedSequence (`nn/utils/rnn.py`) runs through the same loop: its rows are laid out step after
step, longest sequences first, so step t slices the batch to the `batch_sizes[t]` sequences still
running. A padded batch is the case where every sequence runs every step. Padded positions are
never computed, each sequence's final state is its state at its own last step (backwards, its
first step starts from its own last one), and the gradients are exact.
"""

from __future__ import annotations

import math
from itertools import accumulate

from genesis import functional as GF
from genesis.creation import empty, zeros
from genesis.errors import ShapeError
from genesis.functional.fused import fused_in_eager
from genesis.functional.recurrent import lstm_layer
from genesis.nn import functional as F
from genesis.nn import init
from genesis.nn.modules.module import Module
from genesis.nn.parameter import Parameter
from genesis.nn.utils.rnn import PackedSequence, host_ints
from genesis.tensor import Tensor

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _cell_step(mode, x_projection, hidden, cell, w_hh, b_hh, w_hr=None):
    """One time step: `x_projection` is W_ih x + b_ih (precomputed); returns (h', c')."""
    h_projection = F.linear(hidden, w_hh, b_hh)
    if mode == "LSTM":
        i, f, g, o = GF.chunk(x_projection + h_projection, 4, -1)
        cell = GF.sigmoid(f) * cell + GF.sigmoid(i) * GF.tanh(g)
        hidden = GF.sigmoid(o) * GF.tanh(cell)
        if w_hr is not None:
            hidden = F.linear(hidden, w_hr)
        return hidden, cell
    if mode == "GRU":
        r_x, z_x, n_x = GF.chunk(x_projection, 3, -1)
        r_h, z_h, n_h = GF.chunk(h_projection, 3, -1)
        r, z = GF.sigmoid(r_x + r_h), GF.sigmoid(z_x + z_h)
        n = GF.tanh(n_x + r * n_h)
        return (1 - z) * n + z * hidden, None
    pre = x_projection + h_projection
    return (GF.tanh(pre) if mode == "RNN_TANH" else GF.relu(pre)), None


def _first_rows(state, count):
    """The states of the first `count` sequences (no op where that is all of them)."""
    return state if state is None or count == state.shape[0] else state[:count]


def _run_direction(mode, projected, batch_sizes, h0, c0, weights, reverse):
    w_hh, b_hh, w_hr = weights
    if mode == "LSTM" and w_hr is None and len(set(batch_sizes)) == 1 and batch_sizes[0] > 0:
        return _lstm_layer(projected, batch_sizes, h0, c0, w_hh, b_hh, reverse)
    return _time_loop(mode, projected, tuple(batch_sizes), h0, c0, w_hh, b_hh, w_hr, reverse)


def _lstm_layer(projected, batch_sizes, h0, c0, w_hh, b_hh, reverse):
    """An LSTM layer whose sequences all run every step: the whole time loop as one op."""
    steps, batch, hidden = len(batch_sizes), batch_sizes[0], w_hh.shape[1]
    pre = projected if b_hh is None else projected + b_hh
    hs, cs = lstm_layer(GF.reshape(pre, (steps, batch, 4 * hidden)), h0, c0, w_hh, reverse=reverse)
    last = 0 if reverse else steps - 1
    return GF.reshape(hs, (steps * batch, hidden)), hs[last], cs[last]


@fused_in_eager(min_elements=0)  # eagerly, a layer called again with the same shapes runs compiled
def _time_loop(mode, projected, batch_sizes, h0, c0, w_hh, b_hh, w_hr, reverse):
    """One layer in one direction. Step t reads rows offsets[t] : offsets[t] + batch_sizes[t] of
    `projected` (W_ih x + b_ih), one per sequence still running, longest sequences first; it runs
    the cell on the first batch_sizes[t] states only, so a padded position is never computed.
    Forwards, a sequence that ends leaves its last state aside; backwards, a sequence joins at its
    own last step with its initial state. Returns the hidden states in `projected`'s row layout
    and each sequence's final (h, c)."""
    offsets = list(accumulate([0, *batch_sizes]))
    running = batch_sizes[-1] if reverse else batch_sizes[0]
    hidden, cell = _first_rows(h0, running), _first_rows(c0, running)  # backwards: the longest only
    ended_h, ended_c = [], []  # forwards: the states of sequences that ended, the shortest first
    out = [None] * len(batch_sizes)
    for t in reversed(range(len(batch_sizes))) if reverse else range(len(batch_sizes)):
        count = batch_sizes[t]
        if count < running:
            ended_h.append(hidden[count:])
            ended_c.append(None if cell is None else cell[count:])
            hidden, cell = _first_rows(hidden, count), _first_rows(cell, count)
        elif count > running:
            hidden = GF.cat([hidden, h0[running:count]], 0)
            cell = None if cell is None else GF.cat([cell, c0[running:count]], 0)
        running = count
        step_input = projected[offsets[t] : offsets[t] + count]
        hidden, cell = _cell_step(mode, step_input, hidden, cell, w_hh, b_hh, w_hr)
        out[t] = hidden
    if ended_h:
        hidden = GF.cat([hidden, *reversed(ended_h)], 0)
        cell = None if cell is None else GF.cat([cell, *reversed(ended_c)], 0)
    return GF.cat(out, 0), hidden, cell


class RNNBase(Module):
    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
            )
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError("hidden_size and num_layers must be positive integers")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        directions = 2 if bidirectional else 1
        real_hidden = proj_size or hidden_size
        gate_size = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gate_size, layer_input)), ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                for name, shape in shapes:
                    setattr(self, name + suffix, Parameter(empty(shape, dtype=dtype, device=device)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name in self._flat_weights_names:
            init.uniform_(getattr(self, name), -bound, bound)

    def _weights(self, layer: int, direction: int):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        get = lambda name: getattr(self, name + suffix, None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def _initial_state(self, hx, batch: int, unbatched: bool, like: Tensor):
        """(h0, c0 or None), each (layers * directions, N, size)."""
        directions = 2 if self.bidirectional else 1
        shape_h = (self.num_layers * directions, batch, self.proj_size or self.hidden_size)
        shape_c = (self.num_layers * directions, batch, self.hidden_size)
        if hx is None:
            h0 = zeros(shape_h, dtype=like.dtype, device=like.device)
            c0 = zeros(shape_c, dtype=like.dtype, device=like.device) if self.mode == "LSTM" else None
            return h0, c0
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("LSTM expects hx to be a tuple (h_0, c_0)")
            h0, c0 = hx
        else:
            h0, c0 = hx, None
        if unbatched:
            h0 = h0.unsqueeze(1)
            c0 = None if c0 is None else c0.unsqueeze(1)
        for name, state, shape in (("h_0", h0, shape_h), ("c_0", c0, shape_c)):
            if state is not None and tuple(state.shape) != shape:
                raise ShapeError(
                    f"{type(self).__name__}: expected {name} of shape {list(shape)}, got {list(state.shape)}"
                )
        return h0, c0

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        if input.ndim not in (2, 3):
            raise ShapeError(f"{type(self).__name__}: expected a 2-D or 3-D input, got shape {list(input.shape)}")
        unbatched = input.ndim == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        self._check_features(x, input)
        length, batch = x.shape[0], x.shape[1]
        if length == 0:
            raise ShapeError(
                f"{type(self).__name__}: expected sequence length to be larger than 0, "
                f"got input shape {list(input.shape)}"
            )
        h0, c0 = self._initial_state(hx, batch, unbatched, x)
        # a padded batch is a packed one whose sequences all run every step: rows t * batch + b
        rows, h_n, c_n = self._layers(GF.reshape(x, (length * batch, x.shape[-1])), [batch] * length, h0, c0)
        x = GF.reshape(rows, (length, batch, rows.shape[-1]))
        output = x.squeeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)
        if unbatched:
            h_n = h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        return output, ((h_n, c_n) if self.mode == "LSTM" else h_n)

    def _forward_packed(self, packed: PackedSequence, hx):
        """A PackedSequence in, a PackedSequence out; hx and the final states in the batch's own order
        (PyTorch permutes them by `sorted_indices` around the layers)."""
        batch_sizes = host_ints(packed.batch_sizes, "a PackedSequence's batch_sizes")
        data, sorted_indices = packed.data, packed.sorted_indices
        if data.ndim != 2:
            raise ShapeError(f"{type(self).__name__}: expected packed data of 2 dims, got shape {list(data.shape)}")
        self._check_features(data, data)
        h0, c0 = self._initial_state(hx, batch_sizes[0], False, data)
        if hx is not None and sorted_indices is not None:
            h0 = GF.index_select(h0, 1, sorted_indices)
            c0 = None if c0 is None else GF.index_select(c0, 1, sorted_indices)
        rows, h_n, c_n = self._layers(data, batch_sizes, h0, c0)
        if packed.unsorted_indices is not None:
            h_n = GF.index_select(h_n, 1, packed.unsorted_indices)
            c_n = None if c_n is None else GF.index_select(c_n, 1, packed.unsorted_indices)
        output = PackedSequence(rows, packed.batch_sizes, sorted_indices, packed.unsorted_indices)
        return output, ((h_n, c_n) if self.mode == "LSTM" else h_n)

    def _check_features(self, x, input) -> None:
        if x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{type(self).__name__}: input of shape {list(input.shape)} has {x.shape[-1]} features, "
                f"expected input_size={self.input_size}"
            )

    def _layers(self, x, batch_sizes, h0, c0):
        """Every layer and direction over `x`, rows laid out step after step (`batch_sizes[t]` rows for
        step t); returns the last layer's rows and the final states (layers * directions, N, size)."""
        directions = 2 if self.bidirectional else 1
        final_h, final_c = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, direction)
                index = layer * directions + direction
                projected = F.linear(x, w_ih, b_ih)  # every time step's input product at once
                rows, hidden, cell = _run_direction(
                    self.mode,
                    projected,
                    batch_sizes,
                    h0[index],
                    None if c0 is None else c0[index],
                    (w_hh, b_hh, w_hr),
                    reverse=bool(direction),
                )
                outputs.append(rows)
                final_h.append(hidden)
                final_c.append(cell)
            x = outputs[0] if directions == 1 else GF.cat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        h_n = GF.stack(final_h, 0)
        c_n = GF.stack(final_c, 0) if self.mode == "LSTM" else None
        return x, h_n, c_n

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(RNNBase):
    """Elman RNN: h' = tanh (or relu) of W_ih x + b_ih + W_hh h + b_hh."""

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        nonlinearity="tanh",
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
        proj_size=0,  # PyTorch's RNN takes it too, to refuse it
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(
            "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
        )


class LSTM(RNNBase):
    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        proj_size=0,
        device=None,
        dtype=None,
    ):
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
        )


class GRU(RNNBase):
    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
        proj_size=0,  # PyTorch's GRU takes it too, to refuse it
    ):
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
        )


class RNNCellBase(Module):
    _mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gate_size = _GATES[self._mode] * hidden_size
        self.weight_ih = Parameter(empty((gate_size, input_size), dtype=dtype, device=device))
        self.weight_hh = Parameter(empty((gate_size, hidden_size), dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(empty(gate_size, dtype=dtype, device=device))
            self.bias_hh = Parameter(empty(gate_size, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def _step(self, input, hx):
        if input.ndim not in (1, 2):
            raise ShapeError(f"{type(self).__name__}: expected a 1-D or 2-D input, got shape {list(input.shape)}")
        unbatched = input.ndim == 1
        x = input.unsqueeze(0) if unbatched else input
        if hx is None:
            shape = (x.shape[0], self.hidden_size)
            hx = zeros(shape, dtype=x.dtype) if self._mode != "LSTM" else (zeros(shape, dtype=x.dtype),) * 2
        elif unbatched:
            hx = tuple(h.unsqueeze(0) for h in hx) if self._mode == "LSTM" else hx.unsqueeze(0)
        hidden, cell = hx if self._mode == "LSTM" else (hx, None)
        h, c = _cell_step(
            self._mode, F.linear(x, self.weight_ih, self.bias_ih), hidden, cell, self.weight_hh, self.bias_hh
        )
        if unbatched:
            h = h.squeeze(0)
            c = None if c is None else c.squeeze(0)
        return (h, c) if self._mode == "LSTM" else h

    def forward(self, input, hx=None):
        return self._step(input, hx)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        self._mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, bias, device, dtype)


class LSTMCell(RNNCellBase):
    _mode = "LSTM"


class GRUCell(RNNCellBase):
    _mode = "GRU"


__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
