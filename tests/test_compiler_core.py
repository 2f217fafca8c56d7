"""The compiler's front half: tracing, the IR, the passes, guards, graph breaks and the dump.

Every compiled result is checked against the same function run eagerly; the
passes are checked on graphs built by hand, where the expected graph is known.
"""

import json
import re
import warnings

import numpy as np
import pytest

import genesis
from genesis import compiler
from genesis.compiler import pytree
from genesis.compiler.ir import Graph, GraphError
from genesis.compiler.passes import run_pipeline
from genesis.compiler.passes.cse import cse
from genesis.compiler.passes.dce import dce
from genesis.compiler.passes.fusion import Group
from genesis.compiler.program import trace

f32 = genesis.float32


def randn(*shape, seed=0, dtype=f32, requires_grad=False):
    data = np.random.default_rng(seed).standard_normal(shape)
    return genesis.tensor(data, dtype=dtype, requires_grad=requires_grad)


def assert_same(actual, expected, rtol=1e-6, atol=1e-6):
    assert actual.shape == expected.shape and actual.dtype is expected.dtype
    np.testing.assert_allclose(
        actual.detach().numpy().astype(np.float64), expected.detach().numpy().astype(np.float64), rtol=rtol, atol=atol
    )


def traced(fn, *args):
    leaves, spec = pytree.flatten((args, {}))
    return trace(fn, leaves, spec).graph


# ---- tracing and the IR -----------------------------------------------------------------
def test_trace_records_ops_in_order_with_meta_and_source_lines():
    def fn(x, y):
        return (x * y + 1).sum(dim=1)

    graph = traced(fn, randn(3, 4), randn(4))
    ops = [node.op for node in graph.op_nodes()]
    assert ops == ["mul", "add", "sum"]
    total = graph[graph.outputs[0]]
    assert total.shape == (3,) and total.dtype is f32
    assert all(node.source and node.source.startswith("test_compiler_core.py:") for node in graph.op_nodes())
    text = str(graph)
    assert "mul(v0, v1)" in text and "add(v2, 1)" in text and text.endswith(f"return ({graph.outputs[0]})")
    graph.verify()


def test_text_form_keeps_repeated_inputs_that_the_digraph_merges():
    graph = traced(lambda x: x * x, randn(5))
    node = graph.op_nodes()[0]
    assert node.inputs == ("v0", "v0")
    assert graph.nx.number_of_edges() == 1  # one edge, two ordered inputs: the tuple is the truth


def test_dot_export_names_every_node_and_edge():
    graph = traced(lambda x, y: (x + y).exp(), randn(2, 3), randn(2, 3))
    dot = graph.to_dot()
    assert dot.startswith("digraph genesis {") and dot.rstrip().endswith("}")
    for node in graph.nodes():
        assert f'"{node.name}" [label="{node.name}: {node.op}' in dot
    assert dot.count("->") == graph.nx.number_of_edges() + len(graph.outputs)


def test_verify_catches_wrong_meta_cycles_and_dangling_outputs():
    graph = Graph()
    x = graph.add_input((2, 3), f32)
    y = graph.add("exp", (x.name,), shape=(2, 3), dtype=f32)
    graph.outputs = [y.name]
    graph.verify()
    wrong = graph.copy()
    wrong.replace(y.name, shape=(3, 2))
    with pytest.raises(GraphError, match=r"recorded \(3, 2\) float32, but the op's meta gives \(2, 3\) float32"):
        wrong.verify()
    cyclic = graph.copy()
    cyclic.nx.add_edge(y.name, x.name)
    with pytest.raises(GraphError, match="cycle"):
        cyclic.verify()
    dangling = graph.copy()
    dangling.outputs = ["v99"]
    with pytest.raises(GraphError, match="output v99 is not in the graph"):
        dangling.verify()
    with pytest.raises(GraphError, match="reads v42, which is not in the graph"):
        graph.add("exp", ("v42",), shape=(2, 3), dtype=f32)


def test_verify_catches_fusion_groups_that_read_each_other_round_a_cycle():
    # exp and neg in one kernel, log between them outside it: the kernel would need log's value
    # before it runs and log needs the kernel's exp. A pass that groups so must be caught.
    graph = Graph()
    x = graph.add_input((4,), f32)
    a = graph.add("exp", (x.name,), shape=(4,), dtype=f32)
    b = graph.add("log", (a.name,), shape=(4,), dtype=f32)
    c = graph.add("neg", (b.name,), shape=(4,), dtype=f32)
    graph.outputs = [c.name]
    graph.groups = [Group(0, 4, [a.name, b.name, c.name])]
    graph.verify()
    graph.groups = [Group(0, 4, [a.name, c.name])]
    with pytest.raises(GraphError, match="fusion groups read each other round a cycle"):
        graph.verify()
    graph.groups = [Group(0, 4, [a.name]), Group(1, 4, [a.name, c.name])]
    with pytest.raises(GraphError, match=f"{a.name} is in both group g0 and group g1"):
        graph.verify()


# ---- passes -------------------------------------------------------------------------------
def test_dce_drops_what_no_output_reads_but_keeps_inputs():
    def fn(x, unused):
        x.exp()  # computed and thrown away
        return x + 1

    graph = dce(traced(fn, randn(3), randn(3)))
    assert [n.op for n in graph.op_nodes()] == ["add"]
    assert len(graph.inputs) == 2


def test_cse_merges_equal_subexpressions_and_keeps_literal_types_apart():
    def fn(x, i):
        return (x * 2 + x * 2).sum() + (x * 2.0).sum(), (i * 1) + (i * 1.0)

    graph = cse(traced(fn, randn(4), genesis.arange(4)))
    muls = [n for n in graph.op_nodes() if n.op == "mul"]
    # x*2 and x*2 merge; x*2.0 is a different literal type (and i*1 vs i*1.0 differ in dtype)
    assert sorted(repr(n.inputs[1]) for n in muls) == ["1", "1.0", "2", "2.0"]


def test_simplify_removes_identities_but_never_a_promotion_or_broadcast():
    def fn(x, i):
        kept_broadcast = x * genesis.ones(2, 1, 1).sum(dim=0) * 1  # (3, 4) * 1 after the broadcast: dropped
        promoted = i * 1.0  # int64 -> float32: kept
        double_transpose = x.transpose(0, 1).transpose(0, 1)  # identity: dropped
        same_cast = x.to(genesis.float32)
        return kept_broadcast + 0, promoted, double_transpose - 0, same_cast / 1

    graph = run_pipeline(traced(fn, randn(3, 4), genesis.arange(4)))
    ops = [n.op for n in graph.op_nodes()]
    assert "permute" not in ops and "cast" not in ops
    assert ops.count("mul") == 2  # the broadcasting multiply and the promoting one
    x = graph.inputs[0]
    assert graph.outputs[2] == x and graph.outputs[3] == x


def test_pipeline_can_switch_a_pass_off_and_refuses_unknown_names():
    graph = traced(lambda x: x * 1, randn(3))
    assert [n.op for n in run_pipeline(graph, disabled=("simplify",)).op_nodes()] == ["mul"]
    assert run_pipeline(graph).op_nodes() == []
    with pytest.raises(ValueError, match="unknown passes"):
        run_pipeline(graph, disabled=("fusion_typo",))


# ---- compile: results, guards, graph breaks ----------------------------------------------------
def chain(x, y):
    return (x * y + 1).tanh() * 0.5 + (-x).exp() * y


@pytest.mark.parametrize("shape", [(7,), (33, 65), (2, 3, 5), ()])
def test_compiled_equals_eager(shape):
    x, y = randn(*shape, seed=1), randn(*shape, seed=2)
    compiled = genesis.compile(chain, backend="eager")
    assert_same(compiled(x, y), chain(x, y), rtol=0, atol=0)


def test_nested_arguments_and_results_keep_their_structure():
    def fn(batch, scale=2.0):
        return {"sum": batch["a"] + batch["b"][0], "scaled": [batch["a"] * scale, "label"]}

    batch = {"a": randn(3), "b": (randn(3, seed=1),)}
    out = genesis.compile(fn)(batch, scale=3.0)
    expected = fn(batch, scale=3.0)
    assert set(out) == {"sum", "scaled"} and out["scaled"][1] == "label"
    assert_same(out["sum"], expected["sum"])
    assert_same(out["scaled"][0], expected["scaled"][0])


def test_results_are_the_tensors_eager_returns_even_where_subexpressions_merge():
    def fn(x):
        y = x * 2
        return y, y, x * 2, x, x  # y twice is one tensor; x * 2 is another with y's values; x is x

    x = genesis.randn(5)
    compiled = genesis.compile(fn)
    for _ in range(2):
        y, again, other, x1, x2 = compiled(x)
    assert compiled.graphs[0].outputs.count(compiled.graphs[0].outputs[0]) == 2  # merged by CSE
    assert y is again and x1 is x and x2 is x
    other.add_(1)  # in place: eager's y does not see it
    np.testing.assert_array_equal(y.numpy(), x.numpy() * 2)
    np.testing.assert_array_equal(other.numpy(), x.numpy() * 2 + 1)


def test_guards_recompile_on_shape_dtype_grad_mode_and_scalar_arguments():
    compiled = genesis.compile(lambda x, k: x * k)
    compiled(randn(3), 2.0)
    compiled(randn(3, seed=1), 2.0)
    assert compiled.stats["compiles"] == 1 and compiled.stats["cache_hits"] == 1
    compiled(randn(4), 2.0)
    compiled(randn(4, dtype=genesis.float64), 2.0)
    compiled(randn(4, dtype=genesis.float64), 3.0)
    with genesis.no_grad():
        compiled(randn(4, dtype=genesis.float64), 3.0)
    reasons = compiled.stats["recompile_reasons"]
    assert compiled.stats["recompiles"] == 4
    assert reasons[0] == "argument 0 shape: (3,) -> (4,)"
    assert reasons[1] == "argument 0 dtype: float32 -> float64"
    assert reasons[2] == "argument 1: ('float', 2.0) -> ('float', 3.0)"
    assert reasons[3] == "grad_mode: True -> False"
    assert_same(compiled(randn(4), 2.0), randn(4) * 2.0)
    assert compiled.stats["recompiles"] == 4  # (4,) float32 with 2.0 is still in the table


def test_recompiling_too_often_warns_and_names_the_guard():
    compiled = genesis.compile(lambda x: x + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 11):
            compiled(randn(n))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "recompiled 8 times" in messages[0] and "argument 0 shape" in messages[0]


def test_autocast_state_is_a_guard():
    from genesis.amp import autocast

    a, b = randn(4, 4), randn(4, 4, seed=1)
    compiled = genesis.compile(lambda a, b: a @ b)
    assert compiled(a, b).dtype is f32
    with autocast(dtype=genesis.bfloat16):
        out = compiled(a, b)
        expected = a @ b
    assert out.dtype is genesis.bfloat16
    assert_same(out, expected, rtol=0, atol=0)
    assert compiled.stats["recompile_reasons"] == ["autocast: (False, 'float16') -> (True, 'bfloat16')"]


def test_a_host_read_falls_back_to_eager_with_one_warning_naming_the_line():
    def fn(x):
        if x.sum() > 0:  # a data-dependent branch
            return x * 2
        return x * 3

    compiled = genesis.compile(fn)
    x = randn(5)
    with pytest.warns(UserWarning, match=r"runs eagerly: a host read .* at test_compiler_core.py:\d+") as caught:
        out = compiled(x)
    assert len(caught) == 1
    assert_same(out, fn(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(compiled(-x), fn(-x))  # later calls run eagerly without warning again
    assert compiled.stats["fallbacks"] and compiled.stats["compiles"] == 0


HOST_READS = {
    "float()": lambda t: float(t),
    "int()": lambda t: int(t),
    ".item()": lambda t: t.item(),
    "bool(), as a branch on a tensor asks": lambda t: 1 if t > 0 else 0,
    ".tolist()": lambda t: t.tolist(),
    ".numpy()": lambda t: t.detach().numpy(),
    "a conversion to a numpy array": lambda t: np.asarray(t.detach()),
    "repr() or print()": lambda t: repr(t),
    "its use as an index": lambda t: "abcdefg"[t.long()],
}


@pytest.mark.parametrize("asked_for", sorted(HOST_READS))
def test_a_graph_break_names_the_host_read_the_code_asked_for(asked_for):
    """The message names the user's call (float(t)), not the numpy call made for it (.reshape)."""
    x = genesis.tensor([1.0, 2.0], requires_grad=True)
    read = HOST_READS[asked_for]

    def step():
        loss = (x * x).sum()
        loss.backward()
        return read(loss)

    with pytest.warns(UserWarning, match=re.escape(f"traced tensor's values ({asked_for}) at test_compiler_core.py")):
        assert genesis.compile(step)() == step()  # it ran eagerly
    with pytest.raises(compiler.GraphBreak, match=re.escape(f"({asked_for})")):
        genesis.compile(step, fullgraph=True)()


def test_fullgraph_raises_at_a_graph_break():
    compiled = genesis.compile(lambda x: x * x.sum().item(), fullgraph=True)
    with pytest.raises(compiler.GraphBreak, match="host read"):
        compiled(randn(3))


def test_genesis_compile_0_returns_the_function_itself(monkeypatch):
    monkeypatch.setenv("GENESIS_COMPILE", "0")
    assert genesis.compile(chain) is chain


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        genesis.compile(chain, backend="cuda")


def test_captured_tensors_are_inputs_read_at_every_call():
    weight = randn(4, 3)

    @genesis.compile
    def project(x):
        return x @ weight

    x = randn(2, 4)
    assert_same(project(x), x @ weight)
    with genesis.no_grad():
        weight.mul_(2.0)  # a later change to a captured tensor is seen: it is an input, not a constant
    assert_same(project(x), x @ weight)
    assert project.stats["compiles"] == 1 and project.graphs[0].inputs.__len__() == 2


@pytest.mark.parametrize("backend", ["eager", "numpy", "c"])
def test_backward_through_a_compiled_function_matches_eager(backend):
    weight = randn(4, 3, requires_grad=True)
    x = randn(5, 4, seed=1)
    compiled = genesis.compile(lambda x: ((x @ weight).tanh() ** 2).mean(), backend=backend)
    compiled(x).backward()
    compiled_grad = weight.grad
    weight.grad = None
    ((x @ weight).tanh() ** 2).mean().backward()
    assert_same(compiled_grad, weight.grad)


# ---- the dump ---------------------------------------------------------------------------------
def test_dump_writes_each_pass_the_dot_graph_and_a_report(tmp_path):
    compiled = genesis.compile(chain, dump_dir=tmp_path)
    compiled(randn(8), randn(8, seed=1))
    (directory,) = tmp_path.iterdir()
    names = sorted(p.name for p in directory.iterdir())
    assert names[:12] == [
        "00_traced.json",  # the traced graph for ir_json.from_json, to run the passes again
        "00_traced.txt",
        "01_autocast.txt",
        "02_loss_scaling.txt",
        "03_clipping.txt",
        "04_autodiff.txt",
        "05_dce.txt",
        "06_cse.txt",
        "07_simplify.txt",
        "08_gathers.txt",
        "09_products.txt",
        "10_dce_after_simplify.txt",
    ]
    assert "graph.dot" in names and "report.json" in names
    traced_text = (directory / "00_traced.txt").read_text()
    assert "tanh(" in traced_text and "exp(" in traced_text
    report = json.loads((directory / "report.json").read_text())
    assert report["nodes"] == len(compiled.graphs[0].op_nodes()) and report["inputs"] == 2


def test_explain_reports_groups_bytes_and_refusals_without_running():
    calls = []

    def fn(x, w):
        calls.append(1)
        h = (x @ w.T + 1).relu()
        return h.sum(dim=1), h.argmax(dim=1)

    text = compiler.explain(fn, randn(64, 16), randn(8, 16))
    assert calls == [1]  # traced once, never executed
    assert "2 ops" not in text and "kernels" in text and "bytes moved per call" in text
    assert "argmax" in text  # not fused, and said so
    eager, fused = re.search(r"eager ([\d,]+), fused ([\d,]+)", text).groups()
    assert int(fused.replace(",", "")) < int(eager.replace(",", ""))


def test_report_json_lists_groups_and_bytes(tmp_path):
    compiled = genesis.compile(chain, dump_dir=tmp_path)
    compiled(randn(1000), randn(1000, seed=1))
    (directory,) = tmp_path.iterdir()
    report = json.loads((directory / "report.json").read_text())
    (group,) = report["groups"]
    assert group["ops"] == ["mul", "add", "tanh", "mul", "neg", "exp", "mul", "add"]
    assert report["kernels"] == 1 and report["library_calls"] == 0
    # x*y, +1, tanh, *0.5, -x, exp, *y, + : each op reads its tensor inputs and writes its result
    assert report["bytes_eager"] == 4000 * (3 + 2 + 2 + 2 + 2 + 2 + 3 + 3)
    assert report["bytes_fused"] == 4000 * 3  # read x and y once, write the result once


@pytest.mark.parametrize(
    "read",
    [lambda t: t.numpy(), lambda t: t.tolist(), lambda t: float(t.sum()), lambda t: np.asarray(t)],
    ids=["numpy", "tolist", "float", "asarray"],
)
def test_every_host_read_breaks_the_graph(read):
    compiled = genesis.compile(lambda x: (read(x), x * 2)[1], fullgraph=True)
    with pytest.raises(compiler.GraphBreak, match="test_compiler_core.py"):
        compiled(randn(3))


def test_dropout_traces_with_a_fresh_seed_per_call_and_eager_masks():
    from genesis import nn

    model = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5), nn.Linear(6, 2))
    x = randn(4, 6)
    compiled = genesis.compile(model)
    outputs = []
    for _ in range(3):
        genesis.manual_seed(3)
        expected = model(x)
        genesis.manual_seed(3)
        outputs.append(compiled(x))
        assert_same(outputs[-1], expected)  # the seeds come from the same generator, in the same order
    assert compiled.stats["fallbacks"] == [] and compiled.stats["compiles"] == 1
    assert not np.array_equal(compiled(x).detach().numpy(), compiled(x).detach().numpy())  # fresh masks


def test_random_integers_break_the_graph():
    compiled = genesis.compile(lambda x: x + genesis.randint(0, 5, (3,)))
    with pytest.warns(UserWarning, match="drawing random integers"):
        compiled(randn(3))


def test_command_line_shows_a_dump(tmp_path, capsys):
    from genesis.compiler.__main__ import main

    genesis.compile(chain, dump_dir=tmp_path)(randn(100), randn(100, seed=1))
    assert main(["show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "== chain_0" in out and "1 kernels" in out and "bytes moved per call" in out
    assert main(["show", str(tmp_path), "--ir", "00_traced"]) == 0
    assert "tanh(" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "missing")]) == 1


def test_without_a_c_compiler_the_default_is_numpy_and_asking_for_c_is_a_clear_error(monkeypatch):
    from genesis.compiler import native

    monkeypatch.setenv("GENESIS_CC", "/nonexistent/cc")
    compiled = genesis.compile(lambda x: x * 2 + 1)
    x = randn(5)
    assert compiled.backend == "numpy"
    assert_same(compiled(x), x * 2 + 1, rtol=0, atol=0)
    with pytest.raises(native.CompilerError, match="GENESIS_CC='/nonexistent/cc' is not an executable C compiler"):
        genesis.compile(lambda x: x * 2 + 1, backend="c")(x)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_library_calls_give_eager_values_and_eager_errors(backend):
    """Unfused ops (cat, gather, cumsum) run their kernels straight on the arrays where dispatch would
    only pass them through, and through dispatch where it casts (a cat of float32 and float64)."""

    def fn(x, y, index):
        joined = genesis.cat([x * 2, x.cumsum(1)], dim=1)
        mixed = genesis.cat([x, y], dim=0)
        return genesis.gather(joined, 1, index) + 1, mixed * 3

    rng = np.random.default_rng(0)
    x = genesis.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    y = genesis.tensor(rng.standard_normal((2, 4)))
    index = genesis.tensor(rng.integers(0, 8, (3, 5)))
    compiled = genesis.compile(fn, backend=backend)
    for got, expected in zip(compiled(x, y, index), fn(x, y, index)):
        assert got.dtype is expected.dtype
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    with pytest.raises(IndexError, match="out of range"):  # the kernel's error, as eager raises it
        compiled(x, y, genesis.tensor(np.full((3, 5), 8)))
