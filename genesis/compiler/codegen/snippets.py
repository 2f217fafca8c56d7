"""How one op reads as a line of kernel code, from its op record.

The op table is the one definition: an op whose eager kernel is a numpy ufunc
(np.add, np.exp, scipy's expit and erf) needs no snippet at all, since the
ufunc itself, called with `out=`, is its numpy kernel line (`ops.op.numpy_snippet`,
which fusion reads too). Other ops carry a `codegen["numpy"]` template in their
record (relu, where, clamp, sum, ...), and `codegen["triton"]` for the Triton
backend. Templates name operands `{0}`, `{1}`, ..., the destination `{out}`, and
attributes by name. A view's numpy form follows from its record's index map.
"""

from __future__ import annotations

from genesis.ops.op import IndexMap, numpy_snippet

__all__ = ["numpy_snippet", "numpy_view", "triton_snippet"]


def numpy_view(index_map: IndexMap, source: str, attrs: dict, shape: str | None = None) -> str:
    """The numpy expression of a view of `source` by `index_map`; `shape` spells the result's shape
    where it is not the attribute's (a block of rows: `(n,) + (...)`)."""
    if index_map is IndexMap.PERMUTE:
        return f"np.transpose({source}, {tuple(attrs['dims'])!r})"
    shape = shape or repr(tuple(attrs["shape_to"]))
    if index_map is IndexMap.RESHAPE:
        return f"np.reshape({source}, {shape})"
    if index_map is IndexMap.BROADCAST:
        return f"np.broadcast_to({source}, {shape})"
    raise NotImplementedError(f"no numpy form for the index map {index_map}")


def triton_snippet(op) -> str | None:
    return op.codegen.get("triton")
