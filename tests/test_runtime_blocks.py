"""The kernel pool's helpers for eager kernels: parts of one ufunc call on several threads."""

import numpy as np


def test_a_slow_ufunc_in_parts_gives_the_same_bits_in_the_ufuncs_dtype(monkeypatch):
    from scipy import special

    from genesis.runtime import blocks

    monkeypatch.setattr(blocks, "THREADS", 3)  # uneven parts of an odd size
    values = np.random.default_rng(0).standard_normal((7, 5001)).astype(np.float32)
    got = blocks.slow_ufunc_in_parts(special.erf, values[:, ::2], min_elements=1000)  # a strided view too
    expected = special.erf(values[:, ::2])
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    small = values[0, :10]
    np.testing.assert_array_equal(blocks.slow_ufunc_in_parts(special.erf, small), special.erf(small))
