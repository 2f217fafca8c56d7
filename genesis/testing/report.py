"""A failure as a self-contained snippet that pastes into a regression test.

The snippet holds the program's function and input constructors exactly as
they ran, the fuzzer's `run` (copied from `runner.py` by its source, so the
two cannot differ), the compile call for the failing backend, and a
comparison with the tolerances the fuzzer used.
"""

from __future__ import annotations

import inspect

from genesis.testing import runner
from genesis.testing.compare import UNIT_ROUNDOFF, tolerance
from genesis.testing.program import PRELUDE, Program

_CHECK = '''
def check(expected, got, rtol):
    """Values (array, dtype name) pairs: equal for ints and bools, close for floats (nan where eager has nan)."""
    if expected is None or got is None:
        assert expected is None and got is None, (expected, got)
        return
    (e, e_dtype), (g, g_dtype) = expected, got
    assert (g.shape, g_dtype) == (e.shape, e_dtype), ((g.shape, g_dtype), (e.shape, e_dtype))
    if e_dtype not in rtol:
        np.testing.assert_array_equal(g, e)
        return
    e, g = e.astype(np.float64), g.astype(np.float64)
    finite = np.isfinite(e)
    scale = max(1.0, float(np.abs(e[finite]).max())) if finite.any() else 1.0
    np.testing.assert_allclose(g, e, rtol=rtol[e_dtype], atol=rtol[e_dtype] * scale, equal_nan=True)
'''


def snippet(program: Program, backend: str, headline: str = "") -> str:
    precision = runner.program_precision(program)
    forward = {d: tolerance(d, precision, program.steps).rtol for d in UNIT_ROUNDOFF}
    backward = {d: tolerance(d, precision, program.steps, backward=True).rtol for d in UNIT_ROUNDOFF}
    comments = "".join(f"# {line}\n" for line in headline.splitlines())
    test = f"""

def test_fuzz_seed_{program.seed}_{backend}():
    compiled = genesis.compile(fn, backend={backend!r})
    forward_rtol = {_floats(forward)}
    backward_rtol = {_floats(backward)}
    for call in range({runner.CALLS}):  # fresh values each call: a compiled call must read its own inputs
        seed = {runner.upstream_seed(program, 0)[:1]} + [call, 7]
        e_out, e_grads, e_inputs = run(fn, inputs(call), seed)
        g_out, g_grads, g_inputs = run(compiled, inputs(call), seed)
        assert len(g_out) == len(e_out)
        for e, g in zip(e_out + e_inputs, g_out + g_inputs):
            check(e, g, forward_rtol)
        for e, g in zip(e_grads, g_grads):
            check(e, g, backward_rtol)


if __name__ == "__main__":
    test_fuzz_seed_{program.seed}_{backend}()
"""
    return (
        comments + PRELUDE + "\n\n" + program.source() + "\n\n" + inspect.getsource(runner.run) + "\n" + _CHECK + test
    )


def _floats(table) -> str:
    return "{" + ", ".join(f"{k!r}: {v:.3g}" for k, v in table.items()) + "}"
