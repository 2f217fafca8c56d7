"""The C backend's loops over a row's elements: one loop per run of trailing dims that every value
steps through as through one dim, the innermost a SIMD loop in which every offset is affine.

Broadcast operands of every kind (per channel, in the middle of a row, per row, size-1 dims
between), with reductions within the row and over the rows beside them, odd sizes, and the
generated C itself: no division or modulo indexes a value inside a SIMD loop.
"""

import re

import numpy as np
import pytest

import genesis
from genesis.compiler.codegen.c_nest import collapse
from tests.test_compiler_c import TOLERANCE, assert_matches_eager, small_chunks  # noqa: F401
from tests.test_compiler_codegen import data

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.c_compiler]


def scale_shift_relu(x, scale, shift):
    return (x * scale + shift).relu()


def batch_norm_relu(x, weight, bias):
    return genesis.nn.functional.batch_norm(x, None, None, weight, bias, training=True).relu()


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 7, 13, 5), (7, 1, 1), (1, 7, 1, 1)),  # per channel over (N, C, H, W)
        ((5, 13, 7), (1, 13, 1), (13, 1)),  # per channel over a 3-d tensor
        ((4, 7, 1, 13), (1, 7, 1, 1), (4, 1, 1, 13)),  # size-1 dims in the middle; one value per row and column
        ((6, 7, 13), (6, 7, 1), (1, 1, 13)),  # one value per (row, channel): read once per channel
        ((6, 13, 2), (1, 13, 1), (2,)),  # an inner run of two
        ((6, 13, 1), (13, 1), (1, 13, 1)),  # a row whose last dim is 1
        ((3, 1, 7, 1), (7, 1), (3, 1, 1, 1)),  # a row of size-1 dims around one
    ],
    ids=str,
)
@pytest.mark.parametrize("dtype", [genesis.float32, genesis.bfloat16], ids=lambda d: d.name)
def test_broadcast_operands_of_every_shape_are_read_at_affine_offsets(shapes, dtype):
    args = [data(*shape, seed=seed, dtype=dtype) for seed, shape in enumerate(shapes)]
    assert_matches_eager(scale_shift_relu, *args, kernels=1, c_kernels=1)


def test_reductions_within_a_row_beside_a_per_channel_operand_match_eager():
    def fn(x, scale):  # softmax and a sum over (C, H, W) of a value scaled per channel
        y = x * scale
        e = (y - y.amax(dim=(1, 2, 3), keepdim=True)).exp()
        return e / e.sum(dim=(1, 2, 3), keepdim=True), (y * y).sum(dim=(1, 2, 3))

    x, scale = data(5, 7, 13, 3), data(7, 1, 1, seed=1)
    _, program = assert_matches_eager(fn, x, scale, rtol=2e-6, atol=1e-7)
    assert program["c_kernels"] == program["kernels"], program


def test_reductions_over_the_rows_and_some_of_a_rows_dims_beside_broadcast_operands(small_chunks):  # noqa: F811
    def fn(x, g, scale):  # per-channel statistics, per (channel, width), with NaN through max and min
        y = x * scale + g
        return (
            (y * g).sum(dim=(0, 2, 3)),
            y.amax(dim=(0, 2, 3)),
            y.amin(dim=(0, 2)),
            (y - g).sum(dim=(0, 1)),
            y.sum(dim=0),
        )

    values = data(301, 7, 13, 5).numpy().copy()
    values[5, 3, 2, 1] = np.nan
    x, g, scale = genesis.tensor(values), data(301, 7, 13, 5, seed=1), data(7, 1, 1, seed=2)
    _, program = assert_matches_eager(fn, x, g, scale, rtol=1e-5, atol=1e-4)
    assert program["c_kernels"] == program["kernels"], program


def test_batch_norm_and_relu_match_eager_in_c():
    x, weight, bias = data(6, 7, 13, 5), data(7, seed=1), data(7, seed=2)
    _, program = assert_matches_eager(batch_norm_relu, x, weight, bias, rtol=1e-5, atol=1e-5)
    assert program["c_kernels"] == program["kernels"], program


def simd_loop_indices(source: str) -> list[str]:
    """The subscripts written inside every `#pragma omp simd` loop of a C source."""
    lines, found = source.splitlines(), []
    for start, line in enumerate(lines):
        if line.strip().startswith("#pragma omp simd"):
            depth = 0
            for body in lines[start + 1 :]:
                found += re.findall(r"\[([^\[\]]*)\]", body)
                depth += body.count("{") - body.count("}")
                if depth <= 0:
                    break
    return found


def test_a_per_channel_operand_is_read_without_division_or_modulo(tmp_path):
    x, scale, shift = data(4, 8, 5, 7), data(8, 1, 1, seed=1), data(8, 1, 1, seed=2)
    for name, fn, args in [
        ("scale_shift", scale_shift_relu, (x, scale, shift)),
        ("batch_norm", batch_norm_relu, (x, data(8, seed=1), data(8, seed=2))),
    ]:
        genesis.compile(fn, backend="c", dump_dir=tmp_path / name)(*args)
        (folder,) = (tmp_path / name).iterdir()
        source = (folder / "kernels.c").read_text()
        indices = simd_loop_indices(source)
        assert indices and not [i for i in indices if "/" in i or "%" in i], (indices, source)
        assert "for (int64_t d0 = 0; d0 < 8; d0++)" in source, source  # the channels, outside the SIMD loop


def test_dims_join_where_every_value_steps_through_them_as_through_one():
    # (C, H, W) rows: a full value, a per-channel one, one per (H, W)
    nest = collapse((7, 13, 5), {"x": (65, 5, 1), "scale": (1, 0, 0), "image": (0, 5, 1)})
    assert nest.sizes == (7, 65) and nest.steps == {"x": (65, 1), "scale": (1, 0), "image": (0, 1)}
    assert nest.offset("x", "r * 455") == "r * 455 + j" and nest.offset("scale", inner=False) == "d0"
    assert nest.position() == "d0 * 65 + i"
    # size-1 dims take no loop; a row of contiguous values is one loop whose counter is the position
    nest = collapse((1, 7, 1, 13), {"x": (91, 13, 13, 1), "bias": (0, 0, 0, 1)})
    assert nest.sizes == (7, 13) and nest.steps["bias"] == (0, 1)
    assert collapse((7, 13), {"x": (13, 1)}).sizes == (91,) and collapse((1, 1), {"x": (0, 0)}).sizes == (1,)


def test_only_kernels_that_move_more_than_the_threshold_stream_their_outputs(tmp_path, monkeypatch):
    from genesis.compiler.codegen import c_loops

    x, w = data(301, 1024), data(1024, seed=1)  # the kernel reads 1.2 MB and writes as much
    for threshold, streams in [(3 << 20, False), (2 << 20, True)]:
        monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path / str(threshold)))  # the threshold decides the code
        monkeypatch.setattr(c_loops, "STREAM_BYTES", threshold)
        assert_matches_eager(lambda x, w: (x * w).relu(), x, w, c_kernels=1)
        sources = "".join(path.read_text() for path in (tmp_path / str(threshold)).glob("*.py"))
        assert ("g_stream_row(o_" in sources) is streams


def test_an_operand_reshaped_within_its_rows_is_read_in_its_new_shape():
    # a convolution's product (N, groups, C, H*W) seen as (N, C, H, W) beside a per-channel bias and
    # batch statistics: C refused the reshape and the group ran as numpy blocks on Python's threads
    def fn(product, bias, weight):
        y = product.reshape(4, 6, 5, 3) + bias.reshape(1, 6, 1, 1)
        return batch_norm_relu(y, weight, bias)

    args = [data(4, 1, 6, 15, seed=0), data(6, seed=1), data(6, seed=2)]
    _, program = assert_matches_eager(fn, *args, rtol=1e-5, atol=1e-5)  # batch statistics: sums in lanes
    assert program["c_kernels"] == program["kernels"], program
