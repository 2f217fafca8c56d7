"""One helper to check a genesis function against PyTorch and against finite differences.

`check_torch(fn, inputs)` runs `fn` on genesis tensors and on torch tensors
(the APIs match, so one lambda serves both), compares values, shapes and
dtypes, then backpropagates the same random cotangent through both and
compares the gradients. `check_numerical_grad(fn, inputs)` compares autograd
against central differences in float64.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import torch

import genesis
from genesis import dtypes
from genesis.tensor import Tensor

TORCH_DTYPE = {
    genesis.float16: torch.float16,
    genesis.bfloat16: torch.bfloat16,
    genesis.float32: torch.float32,
    genesis.float64: torch.float64,
    genesis.int64: torch.int64,
    genesis.int32: torch.int32,
    genesis.int16: torch.int16,
    genesis.int8: torch.int8,
    genesis.uint8: torch.uint8,
    genesis.bool: torch.bool,
}
GENESIS_DTYPE = {v: k for k, v in TORCH_DTYPE.items()}

# (rtol, atol) per dtype: tight where the format allows it
TOLERANCE = {
    genesis.float64: (1e-9, 1e-10),
    genesis.float32: (1e-5, 1e-5),
    genesis.float16: (1e-2, 1e-3),
    genesis.bfloat16: (2e-2, 1e-2),
}
FLOAT_DTYPES = [genesis.float32, genesis.float64, genesis.float16, genesis.bfloat16]


def to_numpy(x) -> np.ndarray:
    """Values of a genesis or torch tensor as a float64 (or integer/bool) numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return (x.double() if x.is_floating_point() else x).numpy()
    data = x._data
    return data.astype(np.float64) if x.dtype.is_floating_point else data


def make_pair(array: np.ndarray, dtype, requires_grad: bool, non_contiguous: bool = False):
    """The same values as a genesis leaf and a torch leaf."""
    from genesis.runtime.cpu import NUMPY_DTYPE

    data = np.asarray(array).astype(NUMPY_DTYPE[dtype])
    if non_contiguous and data.ndim >= 2:
        data = np.ascontiguousarray(np.swapaxes(data, -1, -2)).swapaxes(-1, -2)
        assert not data.flags["C_CONTIGUOUS"]
    g = Tensor._make(data, dtype)
    g.requires_grad = requires_grad
    t_source = np.asarray(array)
    t = torch.tensor(t_source.astype(np.float64) if dtype.is_floating_point else t_source).to(TORCH_DTYPE[dtype])
    if requires_grad:
        t.requires_grad_(True)
    return g, t


def assert_close(actual, expected, dtype, what, rtol=None, atol=None):
    default_rtol, default_atol = TOLERANCE.get(dtype, (0, 0))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    a, e = to_numpy(actual), to_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != torch's {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def _kind_of(array: np.ndarray):
    """The genesis dtype category (floating, integer, bool) of a numpy array's dtype; None for others."""
    return {"f": dtypes.FLOAT, "i": dtypes.INT, "u": dtypes.INT, "b": dtypes.BOOL}.get(array.dtype.kind)


def check_torch(
    fn,
    inputs,
    *,
    dtype=genesis.float32,
    torch_fn=None,
    grad=True,
    rtol=None,
    atol=None,
    grad_rtol=None,
    grad_atol=None,
    non_contiguous=False,
    int_inputs=(),
):
    """Run `fn` on genesis and torch versions of `inputs` and compare results and gradients.

    inputs: numpy arrays, or other values passed to both as they are. An array of the kind of `dtype`
    (floating, integer or bool) is tested in `dtype`, so `dtype=genesis.int32` turns integer arrays into
    int32; an array of another kind keeps its own dtype (int64 indices in a float32 test). Floating
    inputs take gradients, except those at positions in `int_inputs` (indices, targets), which take none.
    """
    torch_fn = torch_fn or fn
    g_args, t_args = [], []
    for i, array in enumerate(inputs):
        if not isinstance(array, np.ndarray):
            g_args.append(array)
            t_args.append(array)
        elif _kind_of(array) == dtype.category:
            under_test = i not in int_inputs
            g, t = make_pair(
                array, dtype, grad and under_test and dtype.is_floating_point, non_contiguous and under_test
            )
            g_args.append(g)
            t_args.append(t)
        else:
            g_args.append(genesis.tensor(array))
            t_args.append(torch.from_numpy(array))
    g_out, t_out = fn(*g_args), torch_fn(*t_args)
    g_outs = g_out if isinstance(g_out, (tuple, list)) else (g_out,)
    t_outs = t_out if isinstance(t_out, (tuple, list)) else (t_out,)
    for k, (go, to) in enumerate(zip(g_outs, t_outs)):
        assert TORCH_DTYPE[go.dtype] == to.dtype, f"output {k}: dtype {go.dtype} != torch's {to.dtype}"
        assert_close(go, to, go.dtype if go.dtype.is_floating_point else dtype, f"output {k}", rtol, atol)
    if not grad:
        return g_out
    differentiable = [(go, to) for go, to in zip(g_outs, t_outs) if to.requires_grad]
    if not differentiable:
        return g_out
    rng = np.random.default_rng(1)
    g_total, t_total = None, None
    for go, to in differentiable:
        seed = rng.standard_normal(go.shape)
        g_seed, _ = make_pair(seed, go.dtype, False)
        t_seed = torch.tensor(seed).to(to.dtype)
        g_term = (go * g_seed).sum()
        t_term = (to * t_seed).sum()
        g_total = g_term if g_total is None else g_total + g_term
        t_total = t_term if t_total is None else t_total + t_term
    g_total.backward()
    t_total.backward()
    for i, (ga, ta) in enumerate(zip(g_args, t_args)):
        if isinstance(ta, torch.Tensor) and ta.requires_grad:
            if ta.grad is None:
                assert ga.grad is None or not np.any(to_numpy(ga.grad)), (
                    f"input {i}: genesis has a gradient, torch none"
                )
                continue
            assert ga.grad is not None, f"input {i}: torch has a gradient, genesis none"
            assert ga.grad.dtype is ga.dtype, f"input {i}: gradient dtype {ga.grad.dtype} != input dtype {ga.dtype}"
            assert_close(
                ga.grad,
                ta.grad,
                dtype,
                f"gradient of input {i}",
                grad_rtol if grad_rtol is not None else rtol,
                grad_atol if grad_atol is not None else atol,
            )
    return g_out


def check_numerical_grad(fn, inputs, *, eps=1e-6, rtol=1e-5, atol=1e-7, int_inputs=()):
    """Autograd against central differences, in float64, for a random cotangent."""
    args = []
    for i, array in enumerate(inputs):
        if i in int_inputs or not isinstance(array, np.ndarray) or array.dtype.kind in "biu":
            args.append(genesis.tensor(array) if isinstance(array, np.ndarray) else array)
        else:
            args.append(genesis.tensor(array.astype(np.float64), requires_grad=True))
    out = fn(*args)
    seed = np.random.default_rng(2).standard_normal(out.shape)
    (out * genesis.tensor(seed)).sum().backward()
    with genesis.no_grad():
        for i, x in enumerate(args):
            if not isinstance(x, Tensor) or not x.requires_grad:
                continue
            numeric = np.zeros(x.shape)
            flat = x._data.reshape(-1)
            for j in range(flat.size):
                original = flat[j]
                flat[j] = original + eps
                plus = float((fn(*args)._data * seed).sum())
                flat[j] = original - eps
                minus = float((fn(*args)._data * seed).sum())
                flat[j] = original
                numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
            analytic = x.grad._data if x.grad is not None else np.zeros(x.shape)
            np.testing.assert_allclose(
                analytic, numeric, rtol=rtol, atol=atol, err_msg=f"numerical gradient of input {i}"
            )


def check_compiled(fn, inputs, *, dtype=genesis.float32, backend=None, rtol=1e-5, atol=1e-6):
    """`genesis.compile(fn)` against eager `fn`: outputs, and the gradients of the float inputs for a random
    cotangent. inputs: numpy arrays (integer ones stay integer and take no gradient) or other values."""

    def leaves():
        return [
            genesis.tensor(a, dtype=dtype, requires_grad=True)
            if isinstance(a, np.ndarray) and a.dtype.kind == "f"
            else genesis.tensor(a)
            if isinstance(a, np.ndarray)
            else a
            for a in inputs
        ]

    results = []
    for run in (fn, genesis.compile(fn, fullgraph=True, **({"backend": backend} if backend else {}))):
        args = leaves()
        out = run(*args)
        seed = np.random.default_rng(3).standard_normal(out.shape)
        (out * genesis.tensor(seed, dtype=out.dtype)).sum().backward()
        grads = [a.grad.numpy() if isinstance(a, Tensor) and a.grad is not None else None for a in args]
        results.append((out.detach().numpy(), grads))
    (eager, eager_grads), (compiled, compiled_grads) = results
    np.testing.assert_allclose(compiled, eager, rtol=rtol, atol=atol, err_msg="compiled output")
    for i, (c, e) in enumerate(zip(compiled_grads, eager_grads)):
        assert (c is None) == (e is None), f"input {i}: a gradient in only one of compiled and eager"
        if c is not None:
            np.testing.assert_allclose(c, e, rtol=rtol, atol=atol, err_msg=f"compiled gradient of input {i}")


__all__ = [
    "check_torch",
    "check_numerical_grad",
    "check_compiled",
    "assert_close",
    "make_pair",
    "to_numpy",
    "TORCH_DTYPE",
    "FLOAT_DTYPES",
    "TOLERANCE",
    "ml_dtypes",
]
