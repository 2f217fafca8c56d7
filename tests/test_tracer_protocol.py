"""Code below the compiler never reaches the tracer: it asks dispatch's protocol functions.

A module that held the tracer itself would branch on its internals, and a pass
run on a graph loaded from a dump (no trace running) would behave differently
from one run inside the trace. These tests read the package's sources.
"""

import ast
from pathlib import Path

import numpy as np
import pytest

import genesis
from genesis import dispatch

PACKAGE = Path(genesis.__file__).resolve().parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "dispatch.py")


def _attributes_of_dispatch(path):
    """(line, name) of every `dispatch.<name>` the module reads."""
    return [
        (node.lineno, node.attr)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "dispatch"
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_compiler_asks_for_the_tracer(path):
    compiler = path.is_relative_to(PACKAGE / "compiler")
    reached = [
        (line, name)
        for line, name in _attributes_of_dispatch(path)
        if name == "_tracer" or (name == "compiling_tracer" and not compiler)
    ]
    assert reached == [], f"{path.name} reaches the tracer: ask one of dispatch's protocol functions instead"


def test_the_scan_sees_the_compilers_use():
    # the check above is no check if it cannot find the compiler's own read of the tracer
    names = [name for _, name in _attributes_of_dispatch(PACKAGE / "compiler" / "trace.py")]
    assert "compiling_tracer" in names


def test_in_eager_mode_a_write_copies_with_numpys_cast_and_old_values_are_a_copy():
    target = genesis.tensor([1.0, 2.0, 3.0])
    before = dispatch.old_values(target)
    dispatch.write(target, genesis.tensor([4.5, 5.5, 6.5], dtype=genesis.float64))
    np.testing.assert_array_equal(target.numpy(), np.array([4.5, 5.5, 6.5], np.float32))
    np.testing.assert_array_equal(before, np.array([1.0, 2.0, 3.0], np.float32))
    assert not dispatch.stands_for_a_non_leaf(target)


def test_a_conditional_write_outside_a_trace_is_refused_by_name():
    with pytest.raises(RuntimeError, match="skip_writes_if"):
        dispatch.skip_writes_if(genesis.tensor(True), None)
