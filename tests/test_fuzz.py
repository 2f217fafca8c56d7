"""The program fuzzer: compiled equals eager on a fixed set of random programs, on every backend.

Seeds 0..399 each make one program (see genesis/testing/generator.py); a test
runs ten of them on one backend, twice each with fresh inputs, and compares
outputs, gradients and written inputs with eager's; seeds 0..199 also run on
the simulated CUDA device, eagerly and compiled. A failure names each
failing seed and prints the first one's program as a snippet; `python -m
genesis.testing.fuzz --seeds S --backends B` shrinks it to a minimal one.

The fuzzer is tested too, so that it cannot pass by accident: it is
deterministic per seed, its programs cover the op families and dtypes it
promises and are mostly valid, and it reports a wrong value planted in a
backend's kernel, a wrong gradient planted in the compiled backward, a
compiled call that reads the previous call's inputs, and an internal error.
"""

import collections

import numpy as np
import pytest

from genesis.testing import compare
from genesis.testing.generator import generate
from genesis.testing.program import InputSpec, Program, Statement
from genesis.testing.report import snippet
from genesis.testing.runner import DEVICE_BACKENDS, run_backend, run_program
from genesis.testing.shrink import shrink

SEEDS = range(400)
CHUNK = 10
BACKENDS = ["c", "numpy", "triton", "eager"]


def _failure_report(failures, backend):
    lines = [
        f"{len(failures)} of {CHUNK} programs failed on backend {backend!r} "
        f"(seeds {', '.join(str(o.seed) for o, _ in failures)}):"
    ]
    lines += [outcome.summary() for outcome, _ in failures]
    outcome, program = failures[0]
    lines.append(
        f"\nthe first, as a test (shrink it with: python -m genesis.testing.fuzz --seeds {outcome.seed} "
        f"--backends {backend}):\n{snippet(program, backend)}"
    )
    return "\n".join(lines)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("first", range(SEEDS.start, SEEDS.stop, CHUNK), ids=lambda s: f"seeds{s}-{s + CHUNK - 1}")
def test_compiled_matches_eager_on_random_programs(first, backend):
    failures = []
    for seed in range(first, first + CHUNK):
        program = generate(seed)
        (outcome,) = run_program(program, [backend])
        if outcome.failed:
            failures.append((outcome, program))
    assert not failures, _failure_report(failures, backend)


# ---- the generator ------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("first", range(0, 200, CHUNK), ids=lambda s: f"seeds{s}-{s + CHUNK - 1}")
def test_the_simulated_cuda_device_matches_eager_on_random_programs(first, backend):
    """The programs on the simulated CUDA device: eager op by op there, and compiled for it (Triton
    kernels on its memory), against eager on the CPU."""
    test_compiled_matches_eager_on_random_programs(first, backend)


def test_a_seed_makes_the_same_program_every_time_and_seeds_differ():
    for seed in (0, 7, 123, 99991):
        assert generate(seed) == generate(seed)
        assert generate(seed).source() == generate(seed).source()
    assert len({generate(seed).source() for seed in range(50)}) == 50


@pytest.fixture(scope="module")
def programs():
    return [generate(seed) for seed in SEEDS]


def test_the_fixed_seeds_cover_every_op_family_and_dtype(programs):
    ops = collections.Counter(op for p in programs for op in p.ops())
    families = collections.Counter(s.family for p in programs for s in p.statements)
    expected_families = {
        "unary",
        "binary",
        "compare",
        "where",
        "cast",
        "reduction",
        "view",
        "matmul",
        "composite",
        "inplace",
        "join",
        "index",
    }
    assert expected_families <= set(families), sorted(families)
    expected_ops = {
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "sin",
        "tanh",
        "sigmoid",
        "erf",
        "relu",
        "abs",
        "gelu",
        "silu",
        "floor",
        "sign",
        "add",
        "sub",
        "mul",
        "div",
        "pow",
        "maximum",
        "minimum",
        "bitwise_and",
        "logical_and",
        "compare",
        "where",
        "masked_fill",
        "cast",
        "sum",
        "mean",
        "amax",
        "amin",
        "prod",
        "var",
        "logsumexp",
        "argmax",
        "matmul",
        "linear",
        "softmax",
        "log_softmax",
        "layer_norm",
        "cross_entropy",
        "attention",
        "reshape",
        "permute",
        "transpose",
        "expand",
        "slice",
        "unsqueeze",
        "squeeze",
        "flatten",
        "add_",
        "mul_",
        "clamp_",
        "setitem",
        "copy_",
        "fill_",
        "cat",
        "stack",
        "index",
        "gather",
    }
    assert not expected_ops - set(ops), sorted(expected_ops - set(ops))
    dtypes = {s.dtype for p in programs for s in p.statements} | {i.dtype for p in programs for i in p.inputs}
    assert {"float16", "bfloat16", "float32", "float64", "int64", "int32", "uint8", "bool"} <= dtypes, dtypes
    ranks = {len(i.shape) for p in programs for i in p.inputs}
    assert {0, 1, 2, 3, 4} <= ranks, ranks
    assert 0.3 < sum(p.requires_grad for p in programs) / len(programs) < 0.6
    assert any("keepdim=True" in s.template for p in programs for s in p.statements)
    lengths = [len(p.statements) for p in programs]
    assert min(lengths) >= 2 and np.median(lengths) <= 8


def test_most_programs_are_ones_eager_genesis_accepts(programs):
    """The generator's shape and dtype model keeps programs valid; a few are refused on purpose."""
    refused = 0
    for program in programs[:150]:
        namespace = program.namespace()
        try:
            namespace["fn"](*namespace["inputs"](0))
        except (TypeError, ValueError, RuntimeError, IndexError):
            refused += 1
    assert refused <= 8, refused


# ---- the comparison ---------------------------------------------------------------------------
def test_tolerances_follow_the_dtype_and_the_depth():
    fp32 = compare.tolerance("float32", "float32", steps=8)
    assert 1e-6 < fp32.rtol < 1e-5
    assert compare.tolerance("float32", "bfloat16", steps=8).rtol > 100 * fp32.rtol  # bf16 values upstream
    assert compare.tolerance("float32", "float32", steps=30).rtol > fp32.rtol
    assert compare.tolerance("float64", "float64", steps=8).rtol < 1e-13
    assert compare.tolerance("int32", "float32", steps=8) is None


def test_differences_are_named_and_exact_dtypes_must_be_equal():
    ints = (np.array([1, 2, 3]), "int64")
    assert compare.describe_difference(ints, ints, None) is None
    assert "1 of 3 elements differ" in compare.describe_difference(ints, (np.array([1, 2, 4]), "int64"), None)
    floats = (np.array([1.0, np.nan, np.inf], dtype=np.float32), "float32")
    tol = compare.tolerance("float32", "float32", steps=2)
    assert compare.describe_difference(floats, floats, tol) is None
    close = (np.array([1.0 + 1e-7, np.nan, np.inf], dtype=np.float32), "float32")
    assert compare.describe_difference(floats, close, tol) is None
    assert "nan" in compare.describe_difference(floats, (np.array([1.0, 0.0, np.inf], np.float32), "float32"), tol)
    assert "max abs error" in compare.describe_difference(
        floats, (np.array([1.001, np.nan, np.inf], np.float32), "float32"), tol
    )
    assert "dtype" in compare.describe_difference(floats, (floats[0].astype(np.float64), "float64"), tol)
    assert "shape" in compare.describe_difference(ints, (np.array([1, 2]), "int64"), None)


# ---- planted bugs: the fuzzer must report each ---------------------------------------------------
def _tanh_program(seed=0, requires_grad=False):
    return Program(
        seed,
        (InputSpec("x0", (4, 5), "float32", requires_grad=requires_grad),),
        (
            Statement("tanh", "unary", "{0}.tanh()", ("x0",), "v0", shape=(4, 5), dtype="float32"),
            Statement("mul", "binary", "{0} * {1}", ("v0", "x0"), "v1", shape=(4, 5), dtype="float32"),
        ),
        ("v1",),
    )


@pytest.fixture
def wrong_tanh(monkeypatch, tmp_path):
    """Plants a relative error in tanh's kernel line in every backend. (The disk cache's key covers
    genesis's source files, not an op record changed at run time: the kernels go to a fresh cache.)"""
    from genesis.ops import OPS

    def plant(relative_error):
        monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
        codegen, factor = OPS["tanh"].codegen, 1 + relative_error
        monkeypatch.setitem(
            codegen, "numpy", f"np.tanh({{0}}, out={{out}}); np.multiply({{out}}, {factor!r}, out={{out}})"
        )
        monkeypatch.setitem(codegen, "c", f"({codegen['c']} * {factor!r})")
        monkeypatch.setitem(codegen, "triton", f"({codegen['triton']} * {factor!r})")

    return plant


@pytest.mark.parametrize("backend", ["c", "numpy", "triton"])
def test_a_value_planted_wrong_in_a_kernel_is_a_mismatch(backend, wrong_tanh):
    """Wrong in the fifth digit: the fp32 tolerance of a short program must see it."""
    assert run_backend(_tanh_program(), backend).status == "match"
    wrong_tanh(1e-5)
    outcome = run_backend(_tanh_program(), backend)
    assert outcome.status == "mismatch" and outcome.differences[0].startswith("output 0"), outcome.summary()


def test_random_programs_find_the_planted_kernel_bug(wrong_tanh):
    """Not only a hand-written program: generated ones that reach tanh in fp32, and pass as they are, fail."""
    with_tanh = [
        seed
        for seed in SEEDS
        if ".tanh()" in generate(seed).source() and generate(seed).notes["float_dtype"] == "float32"
    ]
    passing = [seed for seed in with_tanh if run_backend(generate(seed), "numpy", calls=1).status == "match"][:5]
    assert len(passing) >= 3, with_tanh
    wrong_tanh(1e-3)
    outcomes = [run_backend(generate(seed), "numpy", calls=1) for seed in passing]
    assert sum(o.status == "mismatch" for o in outcomes) >= 2, [o.summary() for o in outcomes]


def test_a_gradient_planted_wrong_in_the_compiled_backward_is_a_mismatch(monkeypatch):
    from genesis.compiler import backward

    assert run_backend(_tanh_program(requires_grad=True), "numpy").status == "match"
    gradient = backward.BackwardCall.gradient
    monkeypatch.setattr(backward.BackwardCall, "gradient", lambda self, *args: gradient(self, *args) * 1.0001)
    outcome = run_backend(_tanh_program(requires_grad=True), "numpy")
    assert outcome.status == "mismatch" and outcome.differences[0].startswith("grad of x0"), outcome.summary()


def test_a_compiled_call_that_reads_the_first_calls_inputs_is_a_mismatch_on_the_second_call(monkeypatch):
    from genesis.compiler.api import CompiledFunction

    call = CompiledFunction.__call__

    def stale(self, *args):
        self.__dict__.setdefault("first_args", args)
        return call(self, *self.first_args)

    monkeypatch.setattr(CompiledFunction, "__call__", stale)
    outcome = run_backend(_tanh_program(), "numpy")
    assert outcome.status == "mismatch" and outcome.call == 1, outcome.summary()


def test_an_internal_error_while_compiling_is_a_crash(monkeypatch):
    from genesis.compiler import passes

    def broken(graph):
        raise KeyError("v3")

    monkeypatch.setattr(passes, "PIPELINE", [("broken", broken)])
    outcome = run_backend(_tanh_program(), "numpy")
    assert outcome.status == "crash" and outcome.error.startswith("KeyError"), outcome.summary()


def test_a_failing_program_shrinks_to_the_statement_that_fails(wrong_tanh):
    wrong_tanh(1e-5)
    statements = [
        Statement("exp", "unary", "{0}.clamp(-4, 4).exp()", ("x0",), "v0", shape=(4, 5), dtype="float32"),
        Statement("sum", "reduction", "{0}.sum(dim=1)", ("v0",), "v1", shape=(4,), dtype="float32"),
        Statement("tanh", "unary", "{0}.tanh()", ("x1",), "v2", shape=(4, 5), dtype="float32"),
        Statement("add", "binary", "{0} + {1}", ("v2", "x0"), "v3", shape=(4, 5), dtype="float32"),
        Statement("neg", "unary", "-{0}", ("v1",), "v4", shape=(4,), dtype="float32"),
    ]
    inputs = (InputSpec("x0", (4, 5), "float32", requires_grad=True), InputSpec("x1", (4, 5), "float32"))
    program = Program(5, inputs, tuple(statements), ("v4", "v3"))
    outcome = run_backend(program, "numpy")
    assert outcome.status == "mismatch"
    small = shrink(program, outcome)
    assert [s.op for s in small.statements] == ["tanh"] and [i.name for i in small.inputs] == ["x1"], small.source()
    assert run_backend(small, "numpy").status == "mismatch"
