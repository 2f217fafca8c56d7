"""How one op reads as a line of kernel code, from its op record.

The op table is the one definition: an op whose eager kernel is a numpy ufunc
(np.add, np.exp, scipy's expit and erf) needs no snippet at all, since the
ufunc itself, called with `out=`, is its numpy kernel line. Other ops carry a
`codegen["numpy"]` template in their record (relu, where, clamp, sum, ...),
and `codegen["triton"]` for the Triton backend. Templates name operands
`{0}`, `{1}`, ..., the destination `{out}`, and attributes by name.
"""

from __future__ import annotations

import numpy as np

# module-level names a generated numpy kernel may use for a ufunc: scipy's live in scipy.special
UFUNC_MODULES = {"numpy": "np", "scipy.special": "special", "scipy.special._ufuncs": "special"}


def ufunc_name(kernel) -> str | None:
    """`np.add` -> "np.add"; scipy.special.expit -> "special.expit"; None for anything else."""
    if not isinstance(kernel, np.ufunc):
        return None
    if getattr(np, kernel.__name__, None) is kernel:
        return f"np.{kernel.__name__}"
    from scipy import special

    if getattr(special, kernel.__name__, None) is kernel:
        return f"special.{kernel.__name__}"
    return None


def numpy_snippet(op, attrs=None) -> str | None:
    """The statement template for `op` in a numpy kernel, or None when it has none."""
    template = op.codegen.get("numpy")
    if template is not None:
        return template
    name = ufunc_name(op.kernel)
    if name is None:
        return None
    arity = op.kernel.nin
    args = ", ".join(f"{{{i}}}" for i in range(arity))
    # eager casts the ufunc's own result (floor of an int array is float64) to the output dtype
    return f"{name}({args}, out={{out}}, casting='unsafe')"


def triton_snippet(op) -> str | None:
    return op.codegen.get("triton")
