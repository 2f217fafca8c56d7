"""Bad input raises a clear genesis error: what was wrong, with the shapes, dims and dtypes involved.

Each case names the exception type and the words its message must contain.
Every error must also come from genesis (or be a builtin exception genesis
raised itself), never numpy's own, and a shape rule's error must not drag
numpy's traceback along as its cause, since that would be the first thing a
user reads.
"""

import traceback

import pytest

import genesis
from genesis.errors import ShapeError

x23 = genesis.ones(2, 3)


def bools(*shape):
    return genesis.ones(*shape, dtype=genesis.bool)


# (id, call, exception type, regex the message must match)
CASES = [
    # broadcasting: both shapes, every binary op
    ("add", lambda: x23 + genesis.ones(4, 3), ShapeError, r"\[2, 3\] and \[4, 3\] cannot be broadcast"),
    (
        "mul_ranks",
        lambda: genesis.ones(5, 1, 3) * genesis.ones(2, 4),
        ShapeError,
        r"\[5, 1, 3\] and \[2, 4\].*dimension -1 has sizes 3 and 4",
    ),
    ("sub", lambda: genesis.ones(7) - genesis.ones(6), ShapeError, r"\[7\] and \[6\]"),
    ("div", lambda: genesis.ones(3, 1) / genesis.ones(2, 2), ShapeError, r"\[3, 1\] and \[2, 2\]"),
    ("compare", lambda: x23 < genesis.ones(3, 2), ShapeError, r"\[2, 3\] and \[3, 2\]"),
    ("maximum", lambda: genesis.maximum(x23, genesis.ones(4, 3)), ShapeError, r"\[2, 3\] and \[4, 3\]"),
    ("where", lambda: genesis.where(x23 > 0, x23, genesis.ones(3, 2)), ShapeError, r"\[2, 3\] and \[3, 2\]"),
    ("masked_fill", lambda: x23.masked_fill(bools(3, 2), 0.0), ShapeError, r"\[3, 2\] and \[2, 3\]"),
    (
        "inplace_grows",
        lambda: genesis.ones(3).add_(genesis.ones(2, 3)),
        ShapeError,
        r"in-place result of shape \[2, 3\] does not fit the target of shape \[3\]",
    ),
    # other shape mismatches
    ("matmul", lambda: x23 @ genesis.ones(4, 5), ShapeError, r"\[2, 3\] and \[4, 5\].*3 columns against 4 rows"),
    ("reshape", lambda: x23.reshape(4, 2), ShapeError, r"shape \[2, 3\] \(6 elements\).*\[4, 2\] \(8 elements\)"),
    ("expand", lambda: x23.expand(3, 3), ShapeError, r"expand shape \[2, 3\] to \[3, 3\]"),
    ("cat", lambda: genesis.cat([x23, genesis.ones(2, 4)]), ShapeError, r"\[2, 3\], \[2, 4\]"),
    ("negative_size", lambda: genesis.zeros(2, -3), ShapeError, r"invalid shape \[2, -3\]"),
    # backward
    (
        "backward_non_scalar",
        lambda: (genesis.ones(2, 3, requires_grad=True) * 2).backward(),
        RuntimeError,
        r"implicitly created only for scalar outputs.*shape \[2, 3\].*gradient=",
    ),
    # dtypes an op refuses
    (
        "matmul_mixed",
        lambda: x23 @ genesis.ones(3, 2, dtype=genesis.float64),
        TypeError,
        "same dtype, got float32 and float64",
    ),
    ("neg_bool", lambda: -bools(3), TypeError, "neg is not defined for bool"),
    ("sub_bool", lambda: bools(3) - bools(3), TypeError, "sub is not defined for bool"),
    ("sub_python_bool", lambda: x23 - True, TypeError, "sub is not defined for bool"),
    ("mean_int", lambda: genesis.tensor([1, 2]).mean(), TypeError, "mean needs a floating-point tensor, got int64"),
    ("var_int", lambda: genesis.tensor([1, 2], dtype=genesis.int32).var(), TypeError, "got int32"),
    ("argmax_bool", lambda: bools(3).argmax(), TypeError, "argmax/argmin are not defined for bool"),
    (
        "amax_empty",
        lambda: genesis.zeros(0, 3).amax(0),
        ValueError,
        r"amax: cannot reduce over a zero-size dimension.*shape \[0, 3\]",
    ),
    (
        "and_float",
        lambda: x23 & x23,
        TypeError,
        "bitwise_and is only defined for integer and bool tensors, got float32",
    ),
    ("not_float", lambda: ~x23, TypeError, "bitwise_not is only defined for integer and bool tensors, got float32"),
    (
        "int_requires_grad",
        lambda: genesis.tensor([1, 2], requires_grad=True),
        RuntimeError,
        "only floating-point tensors can require gradients, got int64",
    ),
    ("rand_int", lambda: genesis.rand(3, dtype=genesis.int32), TypeError, "floating-point dtype, got int32"),
    ("unknown_dtype", lambda: genesis.zeros(2, dtype="complex64"), TypeError, "unknown dtype 'complex64'"),
    ("where_float_condition", lambda: genesis.where(x23, x23, x23), TypeError, "bool tensor as its condition"),
    (
        "int_negative_power",
        lambda: genesis.tensor([2]) ** -1,
        RuntimeError,
        r"pow failed on \(int64\[1\], -1\).*negative integer powers",
    ),
    # indices and dims out of range
    ("index_dim0", lambda: x23[2], IndexError, "index 2 is out of range for dim 0 with size 2"),
    ("index_negative", lambda: x23[-3], IndexError, "index -3 is out of range for dim 0 with size 2"),
    ("index_dim1", lambda: x23[0, 3], IndexError, "index 3 is out of range for dim 1 with size 3"),
    ("index_tensor", lambda: x23[genesis.tensor([0, 5])], IndexError, "index 5 is out of range for dim 0"),
    ("too_many_indices", lambda: x23[0, 0, 0], IndexError, r"too many indices.*shape \[2, 3\]"),
    ("setitem", lambda: x23.__setitem__(5, 1.0), IndexError, "index 5 is out of range for dim 0 with size 2"),
    ("bool_mask", lambda: x23[bools(3)], IndexError, r"mask of shape \[3\] does not match.*\[2\]"),
    ("float_index", lambda: x23[genesis.tensor([0.0])], IndexError, "integer or bool tensors, got float32"),
    (
        "gather",
        lambda: genesis.gather(x23, 1, genesis.tensor([[0, 3], [1, 1]])),
        IndexError,
        "index 3 is out of range for dim 1 with size 3",
    ),
    (
        "index_select",
        lambda: genesis.index_select(x23, 0, genesis.tensor([2])),
        IndexError,
        "index 2 is out of range for dim 0 with size 2",
    ),
    ("sum_dim", lambda: x23.sum(2), IndexError, r"dim 2 is out of range for a tensor with 2 dims.*\[-2, 1\]"),
    ("transpose_dim", lambda: x23.transpose(0, -3), IndexError, "dim -3 is out of range"),
    ("size_dim", lambda: x23.size(5), IndexError, "dim 5 is out of range"),
    ("item", lambda: x23.item(), ValueError, r"exactly one element, got shape \(2, 3\)"),
]


@pytest.mark.parametrize("call, kind, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_genesis_error(call, kind, pattern):
    with pytest.raises(kind, match=pattern) as info:
        call()
    error = info.value
    module = type(error).__module__
    assert module == "builtins" or module.startswith("genesis"), f"{type(error)} is not genesis's"
    # numpy's words may only appear as a wrapped kernel error's cause, never on their own
    assert "numpy" not in str(error).lower()
    if isinstance(error, ShapeError):
        printed = "".join(traceback.format_exception(error))
        assert "numpy" not in printed and "direct cause" not in printed, printed


def test_shape_error_is_a_value_error_and_index_errors_are_index_errors():
    # users catching the builtin families still catch genesis's errors
    with pytest.raises(ValueError):
        x23 + genesis.ones(4, 3)
    with pytest.raises(IndexError):
        x23[genesis.tensor([9])]


def test_a_failed_op_leaves_no_trace_in_the_graph():
    x = genesis.ones(2, 3, requires_grad=True)
    with pytest.raises(ShapeError):
        x * genesis.ones(4, 3)
    (x * 2).sum().backward()
    assert x.grad.tolist() == [[2.0] * 3] * 2


def test_to_names_an_unknown_dtype_or_device():
    with pytest.raises(ValueError, match=r"to\('complex64'\): neither a dtype genesis knows .* nor a device"):
        genesis.ones(2).to("complex64")
