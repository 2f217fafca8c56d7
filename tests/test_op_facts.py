"""Every fact about an op lives in its op record: the code generator names no op.

Adding an op must never touch a backend. These tests read the code generator's
sources and fail when one names an op (a string equal to an op's name, or a
template function named after one), and check that the facts that replaced
those names (a reduction's combine, a view's index map, the helper files a
snippet calls) are complete.
"""

import ast
import re
from pathlib import Path

import pytest

import genesis
from genesis.ops import OPS
from genesis.ops.op import HELPERS, Kind, helper_source

PACKAGE = Path(genesis.__file__).resolve().parent
CODEGEN = sorted((PACKAGE / "compiler" / "codegen").glob("*.py"))
PASSES = sorted((PACKAGE / "compiler" / "passes").glob("*.py"))
TEMPLATES = sorted((PACKAGE / "compiler" / "templates").glob("*.j2"))
DIALECTS = ("c", "triton")


def _op_name(identifier: str) -> str | None:
    """The op a generated function's name stands for (`g_relu_f` -> relu), or None."""
    base = re.sub(r"_[fdi]$", "", identifier.removeprefix("g_"))
    return base if base in OPS else identifier if identifier in OPS else None


@pytest.mark.parametrize("path", CODEGEN + PASSES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_codegen_module_or_pass_names_an_op(path):
    named = [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in OPS
    ]
    assert named == [], f"{path.name} names ops: read the fact from the op record instead"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_no_template_defines_a_function_named_after_an_op(path):
    text = path.read_text()
    defined = re.findall(r"\b(g_\w+)\b", text) + re.findall(r"^def (\w+)\(", text, flags=re.MULTILINE)
    named = sorted({name for name in defined if _op_name(name)})
    assert named == [], f"{path.name} defines {named}: such helpers belong in ops/helpers, named by the op record"


def test_the_checks_see_an_op_name():
    """The two scans above find what they look for (else they could pass on anything)."""
    tree = ast.parse('REDUCTIONS = {"sum": "np.add"}')
    assert [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in OPS] == ["sum"]
    assert _op_name("g_relu_f") == "relu" and _op_name("floor_divide") == "floor_divide"
    assert _op_name("g_bf16_round") is None and _op_name("round_to_bfloat16") is None


def test_every_blockwise_reduction_and_folded_view_says_how():
    reductions = {name for name, op in OPS.items() if op.kind is Kind.REDUCTION and op.combine is not None}
    assert reductions == {"sum", "prod", "amax", "amin"}
    views = {name for name, op in OPS.items() if op.index_map is not None}
    assert views == {"reshape", "expand", "permute"}
    assert all(OPS[name].kind is Kind.VIEW for name in views)


IDENTITIES = sorted(name for name, op in OPS.items() if op.identity_right is not None or op.identity_left is not None)


@pytest.mark.parametrize("name", IDENTITIES)
def test_an_identity_literal_leaves_the_operand_unchanged(name):
    """What the simplifier relies on when it drops `x * 1` or `0 + x`."""
    op = OPS[name]
    x = genesis.tensor([-2.5, -0.0, 0.0, 0.75, 3.0, float("inf")], dtype=genesis.float64)
    if op.identity_right is not None:
        assert op(x, op.identity_right).tolist() == x.tolist()
    if op.identity_left is not None:
        assert op(op.identity_left, x).tolist() == x.tolist()


def test_the_identities_are_the_arithmetic_ones():
    assert {name: (OPS[name].identity_left, OPS[name].identity_right) for name in IDENTITIES} == {
        "add": (0, 0),
        "sub": (None, 0),
        "mul": (1, 1),
        "div": (None, 1),
        "pow": (None, 1),
    }
    assert {name for name, op in OPS.items() if op.converts_only} == {"cast", "reshape", "expand"}


def test_every_helper_an_op_names_exists_and_every_helper_file_is_named():
    named = {name for op in OPS.values() for dialect in DIALECTS for name in op.codegen.get(f"{dialect}_helpers", ())}
    assert named == {path.name for path in HELPERS.iterdir()}
    for op in OPS.values():
        for dialect in DIALECTS:
            helpers = op.codegen.get(f"{dialect}_helpers", ())
            for name in helpers:
                assert op.codegen.get(dialect), f"{op.name} names a {dialect} helper but has no {dialect} snippet"
                # the helper defines what the snippet calls, or what another of the op's helpers calls
                callers = [op.codegen[dialect]] + [helper_source(other) for other in helpers if other != name]
                called = {c for text in callers for c in re.findall(r"\b([A-Za-z_]\w*)\(", text)}
                assert any(re.search(rf"\b{re.escape(c)}\b", helper_source(name)) for c in called), (op.name, name)
