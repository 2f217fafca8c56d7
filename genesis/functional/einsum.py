"""einsum: Einstein summation as diagonals, sums, permutes, reshapes and batched matmuls.

Each operand first loses its repeated labels (a diagonal, `ii->i`) and the labels no
other operand nor the output has (a sum). Operands are then contracted left to right:
labels both share and a later operand or the output needs are the batch, labels they
share and nothing later needs are summed by the product, each one's own labels are
its rows or columns. So the compiler sees a matmul per pair, and every gradient is
an existing rule's. A label's size 1 broadcasts against its size elsewhere, and
`...` stands for the broadcast dims, right-aligned, as in PyTorch.
"""

from __future__ import annotations

import math
import string

from genesis.arguments import is_tensor
from genesis.creation import arange
from genesis.errors import ShapeError
from genesis.functional.indexing import getitem
from genesis.functional.matmul import matmul
from genesis.functional.reduction import sum
from genesis.functional.shape import expand, permute, reshape

_LETTERS = set(string.ascii_letters)


def _parse_term(term, operand, position):
    """The labels of one operand, each a letter or ("...", k) for the k-th broadcast dim from the
    right end of `...`; `...` spans the dims the letters leave."""
    if term.count("...") > 1 or "." in term.replace("...", ""):
        raise ValueError(f"einsum: operand {position}'s subscripts {term!r} have a malformed '...'")
    head, ellipsis, tail = term.partition("...")
    for label in head + tail:
        if label not in _LETTERS:
            raise ValueError(f"einsum: {label!r} in subscripts {term!r} is not a letter")
    spanned = operand.ndim - len(head) - len(tail)
    if spanned < 0 or (spanned and not ellipsis):
        raise ShapeError(
            f"einsum: operand {position} has {operand.ndim} dims (shape {list(operand.shape)}) "
            f"but subscripts {term!r} name {len(head) + len(tail)}"
        )
    return list(head) + [("...", k) for k in range(spanned - 1, -1, -1)] + list(tail)


def _parse(equation, operands):
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: the equation {equation!r} has {len(terms)} operands, {len(operands)} were given")
    labels = [_parse_term(term, x, i) for i, (term, x) in enumerate(zip(terms, operands))]
    broadcast_dims = max((len([label for label in ls if isinstance(label, tuple)]) for ls in labels), default=0)
    ellipsis_labels = [("...", k) for k in range(broadcast_dims - 1, -1, -1)]
    if not arrow:  # implicit output: the broadcast dims, then the letters used once, in alphabetical order
        letters = [label for ls in labels for label in ls if not isinstance(label, tuple)]
        return labels, ellipsis_labels + sorted(label for label in set(letters) if letters.count(label) == 1)
    if output.count("...") > 1 or "." in output.replace("...", ""):
        raise ValueError(f"einsum: the output subscripts {output!r} have a malformed '...'")
    head, ellipsis, tail = output.partition("...")
    out = list(head) + (ellipsis_labels if ellipsis else []) + list(tail)  # without `...`: summed
    known = {label for ls in labels for label in ls}
    for label in head + tail:
        if label not in _LETTERS:
            raise ValueError(f"einsum: {label!r} in the output subscripts {output!r} is not a letter")
        if label not in known:
            raise ValueError(f"einsum: the output subscript {label!r} appears in no operand")
        if out.count(label) > 1:
            raise ValueError(f"einsum: the output subscript {label!r} appears more than once")
    return labels, out


def _take_diagonals(x, labels):
    """Each repeated label kept once: its diagonal, as a last dim."""
    while True:
        repeated = next((label for label in labels if labels.count(label) > 1), None)
        if repeated is None:
            return x, labels
        first, second = [i for i, label in enumerate(labels) if label == repeated][:2]
        if x.shape[first] != x.shape[second]:
            raise ShapeError(
                f"einsum: subscript {repeated!r} is repeated over dims of sizes {x.shape[first]} and {x.shape[second]}"
            )
        rest = [i for i in range(x.ndim) if i not in (first, second)]
        x = permute(x, rest + [first, second])
        positions = arange(x.shape[-1], device=x.device)
        x = getitem(x, (Ellipsis, positions, positions))
        labels = [labels[i] for i in rest] + [repeated]


def _sum_labels(x, labels, drop):
    dims = [i for i, label in enumerate(labels) if label in drop]
    if not dims:
        return x, labels
    return sum(x, dims), [label for label in labels if label not in drop]


def _squeeze_label(x, labels, label):
    i = labels.index(label)
    return reshape(x, x.shape[:i] + x.shape[i + 1 :]), labels[:i] + labels[i + 1 :]


def _contract(a, la, b, lb, needed):
    """a and b as one tensor over the labels `needed` holds (the rest summed), and its labels."""
    for label in [label for label in la if label in lb]:
        size_a, size_b = a.shape[la.index(label)], b.shape[lb.index(label)]
        if size_a == size_b:
            continue
        if size_a != 1 and size_b != 1:
            raise ShapeError(f"einsum: subscript {label!r} has sizes {size_a} and {size_b}, which do not broadcast")
        if label in needed:  # a batch label: the size-1 side repeats
            if size_a == 1:
                a = expand(a, a.shape[: la.index(label)] + (size_b,) + a.shape[la.index(label) + 1 :])
            else:
                b = expand(b, b.shape[: lb.index(label)] + (size_a,) + b.shape[lb.index(label) + 1 :])
        elif size_a == 1:  # a summed label: sum_k a[0] b[k] is a[0] * sum_k b[k]
            a, la = _squeeze_label(a, la, label)
        else:
            b, lb = _squeeze_label(b, lb, label)
    a, la = _sum_labels(a, la, {label for label in la if label not in lb and label not in needed})
    b, lb = _sum_labels(b, lb, {label for label in lb if label not in la and label not in needed})
    batch = [label for label in la if label in lb and label in needed]
    summed = [label for label in la if label in lb and label not in needed]
    rows = [label for label in la if label not in lb]
    columns = [label for label in lb if label not in la]
    size = {**dict(zip(la, a.shape)), **dict(zip(lb, b.shape))}

    def count(group):
        return math.prod(size[label] for label in group)

    a = reshape(
        permute(a, [la.index(label) for label in batch + rows + summed]), (count(batch), count(rows), count(summed))
    )
    b = reshape(
        permute(b, [lb.index(label) for label in batch + summed + columns]),
        (count(batch), count(summed), count(columns)),
    )
    product = matmul(a, b)
    labels = batch + rows + columns
    return reshape(product, tuple(size[label] for label in labels)), labels


def einsum(equation, *operands):
    """PyTorch's einsum(equation, *operands), or einsum(equation, [operands])."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError("einsum: the sublist form is not supported; give the equation as a string")
    if not operands or not all(is_tensor(x) for x in operands):
        raise TypeError("einsum needs at least one operand, and every operand must be a tensor")
    if len({x.dtype for x in operands}) > 1:
        raise TypeError(f"einsum needs operands of one dtype, got {[x.dtype.name for x in operands]}")
    labels, output = _parse(equation, operands)
    terms = []
    for i, (x, ls) in enumerate(zip(operands, labels)):
        x, ls = _take_diagonals(x, ls)
        elsewhere = set(output).union(*(labels[j] for j in range(len(operands)) if j != i))
        terms.append(_sum_labels(x, ls, {label for label in ls if label not in elsewhere}))
    result, result_labels = terms[0]
    for k in range(1, len(terms)):
        needed = set(output).union(*(ls for _, ls in terms[k + 1 :]))
        result, result_labels = _contract(result, result_labels, *terms[k], needed)
    result, result_labels = _sum_labels(result, result_labels, set(result_labels) - set(output))
    return permute(result, [result_labels.index(label) for label in output])


__all__ = ["einsum"]
