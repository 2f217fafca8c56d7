"""Products in Triton: a group's matmul as a `tl.dot` kernel, with its elementwise epilogue fused in.

A matmul group multiplies a stack of rows by a whole 2-d weight before its
loop over the rows ("pre" statements), then runs its epilogue on the product:
a bias, an activation, a residual add, a cast, a loss-scale multiply, or
reductions (a bias's gradient, a norm).

- When the group has one product and its epilogue is elementwise over the
  product's shape (reading operands that are whole rows of it, one value per
  row, one per column or one in all), the epilogue runs on the product's tile
  inside the `tl.dot` kernel, as it leaves the accumulator: one kernel, and
  the product never goes to memory unless something else reads it
  (`templates/triton_matmul.py.j2`).
- Otherwise each product is a `tl.dot` kernel of its own, and the rest of the
  group (`split`) is an ordinary Triton kernel that reads the products as
  row-blocked operands.

The product kernel takes output tiles of BLOCK_M x BLOCK_N, walks K in steps
of BLOCK_K, accumulating in fp32 (fp64 for fp64 operands); fp16/bf16 operands
go to `tl.dot` as they are, so the tensor cores multiply them. fp32 operands
are multiplied in full precision ("ieee"), as eager does, unless
`genesis.backends.cuda.matmul.allow_tf32` is set when the program is built.
Sizes are constants of the kernel (a program is built for its shapes), so
Triton sees their divisibility; a 2-d operand that is a transposed matrix is
read in place (`runtime/triton_buffers.py` `matrix_argument`), and offsets
are 64-bit only where an operand or the product holds 2**31 elements or more.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from genesis import dtypes
from genesis.backends import cuda as cuda_switches
from genesis.compiler.codegen import triton_dialect as dialect
from genesis.compiler.codegen.kernel import KernelSpec, Operand, Statement, kernel_dtype
from genesis.compiler.codegen.layout import next_power_of_2, numel, right_aligned
from genesis.ops.op import Kind

DOT_DTYPES = (dtypes.float16, dtypes.bfloat16, dtypes.float32, dtypes.float64)
INT32_LIMIT = (1 << 31) - 1


def products_of(spec: KernelSpec) -> list[Statement]:
    """The statements a group runs before its loop over the rows: its products."""
    return [s for s in spec.statements if s.phase == "pre"]


def _operand(spec: KernelSpec, local: str) -> Operand | None:
    return next((o for o in spec.operands if o.local == local), None)


def why_not(spec: KernelSpec) -> str | None:
    """Why a group's products are not `tl.dot` kernels, or None (the rest is judged by `split`)."""
    for s in products_of(spec):
        if s.kind is not Kind.MATMUL:
            return f"{s.value} = {s.op} runs before the loop over the rows (not in Triton yet)"
        left, right = (_operand(spec, r) if isinstance(r, str) else None for r in s.reads)
        if left is None or right is None:
            return f"{s.value} = {s.op}: a product of values made inside the group"
        if len(right.shape) != 2 or len(left.shape) < 2:
            return f"{s.value} = {s.op} multiplies {left.shape} by {right.shape}: not a stack of rows by a matrix"
        if left.dtype is not right.dtype or left.dtype not in DOT_DTYPES:
            return f"{s.value} = {s.op} multiplies {left.dtype.name} by {right.dtype.name}: tl.dot takes float pairs"
        if numel(left.shape[:-1]) * right.shape[1] != numel(s.shape):
            return f"{s.value} = {s.op}: its shape {s.shape} is not its rows by the weight's columns"
    return None


@dataclass(frozen=True)
class Product:
    """One `tl.dot` kernel: `statement` = left @ right, M x K by K x N, and the epilogue it runs."""

    name: str
    statement: Statement
    left: Operand
    right: Operand
    epilogue: tuple = ()  # elementwise statements over the product's shape, run on its tile
    operands: tuple = ()  # what the epilogue reads from outside
    outputs: tuple = ()  # the values the kernel stores (the product itself, if it is read elsewhere)
    params: tuple = ()  # the launcher's operands, each once: the group's, or the two factors'

    @property
    def m(self) -> int:
        return numel(self.left.shape[:-1])

    @property
    def k(self) -> int:
        return self.left.shape[-1]

    @property
    def n(self) -> int:
        return self.right.shape[1]


def fused(spec: KernelSpec) -> Product | None:
    """The one product with the whole rest of the group as its epilogue, where that fits a tile."""
    (product, *others) = products_of(spec)
    if others:
        return None
    epilogue = [s for s in spec.statements if s is not product]
    if any(s.kind is not Kind.ELEMENTWISE or s.phase != "block" or s.shape != product.shape for s in epilogue):
        return None
    reads = {r for s in epilogue for r in s.reads if isinstance(r, str)}
    operands = tuple(o for o in spec.operands if o.local in reads)
    if any(_tile_kind(o.shape, product.shape) is None for o in operands):
        return None
    left, right = (_operand(spec, r) for r in product.reads)
    params = tuple(o.local for o in spec.operands)  # the group's launcher: called as the program calls kernels
    return Product(spec.name, product, left, right, tuple(epilogue), operands, spec.outputs, params)


def split(spec: KernelSpec) -> tuple[list[Product], KernelSpec | None]:
    """Each product as a kernel of its own, and the rest of the group as a kernel that reads them
    as row-blocked operands (None when the group is its products alone)."""
    products = products_of(spec)
    kernels = []
    for index, s in enumerate(products):
        left, right = (_operand(spec, r) for r in s.reads)
        params = tuple(dict.fromkeys((left.local, right.local)))  # x @ x reads one operand
        kernels.append(Product(f"{spec.name}_product{index}", s, left, right, (), (), (s.value,), params))
    rest = [s for s in spec.statements if s.phase != "pre"]
    if not rest:
        return kernels, None
    reads = {r for s in rest for r in s.reads if isinstance(r, str)}
    made = [Operand(s.value, s.value, s.shape, s.dtype, True) for s in products if s.value in reads]
    operands = tuple(made) + tuple(o for o in spec.operands if o.local in reads)
    outputs = tuple(v for v in spec.outputs if v not in {s.value for s in products})
    rest = replace(spec, name=f"{spec.name}_epilogue", operands=operands, statements=tuple(rest), outputs=outputs)
    return kernels, rest


def _tile_kind(shape, product_shape) -> str | None:
    """How an epilogue operand of `shape` is read on the product's tile: at each element ("full"),
    one value per row, one per column, one in all ("scalar"); None: none of these."""
    rank, columns = len(product_shape), product_shape[-1]
    if numel(shape) == 1:
        return "scalar"
    if len(shape) > rank:
        return None
    aligned = right_aligned(shape, rank)
    if aligned == tuple(product_shape):
        return "full"
    if aligned == (1,) * (rank - 1) + (columns,):
        return "columns"
    if aligned == tuple(product_shape[:-1]) + (1,):
        return "row"
    return None


TILE_OFFSETS = {"full": "rows * N + cols", "row": "rows", "columns": "cols", "scalar": "rows * 0"}
TILE_MASKS = {"full": "mask", "row": "row_mask", "columns": "col_mask", "scalar": "row_mask"}


def blocks(product: Product) -> dict:
    """Tile sizes, warps and pipeline stages: 128 x 128 tiles with 8 warps for big fp16/bf16/fp32
    products, 64 x 64 with 4 for the rest (fp64's registers hold half as many values); tl.dot wants
    16 or more along each axis."""
    m, n, k = product.m, product.n, product.k
    wide = product.left.dtype is not dtypes.float64 and m >= 256 and n >= 256
    limit = 128 if wide else 64

    def side(size, most):
        return max(16, min(most, next_power_of_2(size)))

    return {
        "block_m": side(m, limit),
        "block_n": side(n, limit),
        "block_k": side(k, 16 if product.left.dtype is dtypes.float64 else 32),
        "num_warps": 8 if wide else 4,
        "num_stages": 3,
        "group_m": 8,
    }


FP32_PRECISION = {False: "ieee", True: "tf32"}  # by genesis.backends.cuda.matmul.allow_tf32


def precision(product: Product) -> str:
    """fp32 products in full precision unless the user allowed TF32 (as torch.backends does)."""
    if product.left.dtype is dtypes.float32:
        return FP32_PRECISION[bool(cuda_switches.matmul.allow_tf32)]
    return "ieee"


def context(product: Product, body: list[str]) -> dict:
    """What `templates/triton_matmul.py.j2` is filled with; `body`: the epilogue's statement lines."""
    s = product.statement
    dtype_of = {e.value: e.dtype for e in (s, *product.epilogue)}
    loads = [
        (o.local, TILE_OFFSETS[kind], TILE_MASKS[kind], dialect.TL_DTYPES[kernel_dtype(o.dtype)])
        for o in product.operands
        for kind in [_tile_kind(o.shape, s.shape)]
    ]
    stores = [(v, f"out_{v}_ptr", dialect.TL_DTYPES[dtype_of[v]]) for v in product.outputs]
    sizes = [product.m * product.k, product.k * product.n, product.m * product.n]
    sizes += [numel(o.shape) for o in product.operands]
    accumulator = dtypes.float64 if product.left.dtype is dtypes.float64 else dtypes.float32
    return {
        "name": product.name,
        "params": ["left_ptr", "right_ptr"]
        + [f"{o.local}_ptr" for o in product.operands]
        + [f"out_{v}_ptr" for v in product.outputs],
        "launch_params": list(product.params) + [f"out_{v}" for v in product.outputs],
        "arguments": [f"as_buffer({o.local})" for o in product.operands]
        + [f"TritonBuffer(out_{v})" for v in product.outputs],
        "left": product.left.local,
        "right": product.right.local,
        "doc": f"{s.value} = {s.op}: ({product.m} x {product.k}) @ ({product.k} x {product.n})"
        + (" -> " + " -> ".join(e.op for e in product.epilogue) if product.epilogue else ""),
        "m": product.m,
        "n": product.n,
        "k": product.k,
        "wide_offsets": max(sizes) > INT32_LIMIT,
        "accumulator": dialect.TL_DTYPES[accumulator],
        "precision": precision(product),
        "product": s.value,
        "product_cast": dialect.cast_to("acc", kernel_dtype(s.dtype)),
        "product_rounding": dialect.round_lines(s.value, s.dtype),
        "loads": loads,
        "body": body,
        "stores": stores,
        **blocks(product),
    }
