"""Passes are functions of the graph alone: the traced graph a dump wrote, loaded back from its JSON,
runs through the same passes to the same graph the compile made, with no trace alive."""

import numpy as np
import pytest

import genesis
from genesis import nn
from genesis.compiler import ir_json
from genesis.compiler.ir import GraphError
from genesis.compiler.passes import LOWERING, run_pipeline


def _lines(text: str) -> list[str]:
    """A graph's text without source lines (a pass run elsewhere captures its tensors at other lines)."""
    return [line.split("  # ")[0] for line in text.splitlines()]


def _program_folder(dump, name):
    (folder,) = [f for f in dump.iterdir() if f.name.startswith(name)]
    return folder


def _mlp():
    genesis.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))


def test_a_training_step_replays_from_its_dump(tmp_path):
    """autocast, loss scaling, clipping and the backward written out from their markers, then
    every optimising pass: the same graph as the compile's."""
    model = _mlp()
    optimizer = genesis.optim.AdamW(model.parameters(), lr=1e-3)

    def train_step(x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    step = genesis.compile(
        train_step, backend="numpy", dump_dir=tmp_path, amp="bf16", loss_scale="dynamic", clip_grad_norm=1.0
    )
    x, y = genesis.randn(8, 12), genesis.tensor(np.arange(8) % 3)
    step(x, y)
    folder = _program_folder(tmp_path, "train_step")
    graph = ir_json.from_json((folder / "00_traced.json").read_text())
    assert _lines(str(graph)) == _lines((folder / "00_traced.txt").read_text())
    markers = {"loss_scale", "found_inf", "grad_norm", "grad"}
    assert markers <= {node.op for node in graph.nodes()}  # every lowering pass has work to do
    graph = run_pipeline(graph, passes=LOWERING)
    lowered = _lines((folder / "04_autodiff.txt").read_text())
    assert _lines(str(graph)) == lowered != _lines((folder / "00_traced.txt").read_text())
    graph = run_pipeline(graph)
    assert _lines(str(graph)) == _lines((folder / "11_fusion.txt").read_text())
    assert len(graph.groups) >= 3 and len(graph) < len(lowered)


def test_a_function_with_a_compiled_backward_replays_its_lowering(tmp_path):
    model = _mlp()

    def loss_of(x):
        return model(x).relu().sum()

    compiled = genesis.compile(loss_of, backend="numpy", dump_dir=tmp_path)
    compiled(genesis.randn(5, 12)).backward()
    folder = _program_folder(tmp_path, "loss_of")
    graph = run_pipeline(ir_json.from_json((folder / "00_traced.json").read_text()), passes=LOWERING)
    assert _lines(str(graph)) == _lines((folder / "04_autodiff.txt").read_text())
    backward = ir_json.from_json((folder / "backward_00_traced.json").read_text())
    assert _lines(str(run_pipeline(backward))) == _lines((folder / "backward_11_fusion.txt").read_text())


def test_a_round_trip_keeps_every_attribute():
    x = genesis.randn(4, 6)
    compiled = genesis.compile(lambda x: x[1:, ::2].sum((0, 1), keepdim=True).to(genesis.float64) * 2, backend="eager")
    compiled(x)
    (program,) = compiled.programs
    graph = program.graph
    graph.groups = []
    again = ir_json.from_json(ir_json.to_json(graph))
    assert str(again) == str(graph)
    assert again.next_name == graph.next_name


@pytest.mark.parametrize("text", ["", "[]", '{"format": "other"}', "{not json"])
def test_a_file_that_is_not_a_graph_is_a_clear_error(text):
    with pytest.raises(GraphError, match="not a graph file"):
        ir_json.from_json(text)


def test_a_graph_the_json_cannot_hold_costs_the_dump_its_json_not_the_compile(tmp_path, monkeypatch):
    def no_json(graph):
        raise TypeError("a graph attribute of type object has no JSON form")

    monkeypatch.setattr(ir_json, "to_json", no_json)
    compiled = genesis.compile(lambda x: x.exp() + 1, backend="numpy", dump_dir=tmp_path)
    x = genesis.randn(3, 4)
    with pytest.warns(UserWarning, match="the dump has no 00_traced.json: a graph attribute"):
        got = compiled(x)
    np.testing.assert_allclose(got.numpy(), (x.exp() + 1).numpy())
    (folder,) = tmp_path.iterdir()
    assert (folder / "00_traced.txt").exists() and not (folder / "00_traced.json").exists()
