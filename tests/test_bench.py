"""The benchmark tool's machinery on tiny cases: what it writes must parse and hold every variant,
with figures that agree with each other. Timing values are never compared with one another."""

import importlib.util
import json

import numpy as np
import pytest

import genesis
from genesis.bench import __main__ as command
from genesis.bench import eager, fusion, plots, suite, timing
from genesis.bench.report import markdown
from genesis.bench.timing import load_torch, measure

TINY = suite.Settings(rounds=2, min_seconds=0.001, op_seconds=0.001, torch_compile=False, copy_mib=4, gemm_size=64)
GENESIS = {"genesis eager", "genesis numpy", "genesis compiled"}
PEER = {"torch eager"} if load_torch() is not None else set()


@pytest.fixture(scope="module", autouse=True)
def no_settling():
    """The pause before each sample lets other libraries' threads sleep on a real run; not here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timing, "SETTLE_SECONDS", 0.0)
        yield


def tiny_cases():
    x, y = np.random.default_rng(0).standard_normal((2, 1000), dtype=np.float32)
    return {
        "fusion": [fusion.Case("tiny chain", fusion.chain, (x, y), fusion.chain if PEER else None)],
        "train": [("tiny MLP 8-16-4 b4", (8, 16, 4), 4)],
        "eager": eager.cases(["add 64x64 (requires_grad)"]),
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    results = suite.run(tiny_cases(), TINY, log=lambda line: None)
    return results, suite.save(results, out), out


def test_json_holds_every_variant_with_positive_medians(written):
    _, _, out = written
    results = json.loads((out / "results.json").read_text())
    eager_variants = {"numpy", "genesis"} | ({"torch"} if PEER else set())
    expected = {"fusion": GENESIS | PEER, "train": GENESIS | PEER, "eager": eager_variants}
    for group, variants in expected.items():
        (row,) = results["groups"][group]
        assert set(row["timing"]) == variants
        for figures in row["timing"].values():
            assert len(figures["samples"]) == TINY.rounds and figures["calls_per_sample"] >= 1
            assert figures["median"] > 0 and figures["spread"] >= 0
            assert figures["q1"] <= figures["median"] <= figures["q3"]
        assert row["seconds"] == {name: t["median"] for name, t in row["timing"].items()}
    assert results["machine"]["cpu"] and results["machine"]["logical_cpus"] >= 1
    assert results["versions"]["numpy"] == np.__version__ and results["versions"]["genesis"] == genesis.__version__
    assert results["ceilings"]["copy_gb_per_s"] > 0 and results["ceilings"]["gemm_gflop_per_s"] > 0


def test_training_step_records_compile_times_memory_and_kernels(written):
    results, _, _ = written
    (row,) = results["groups"]["train"]
    assert row["first_call_seconds"] > 0 and row["second_call_seconds"] > 0 and row["warm_start_seconds"] > 0
    assert row["warm_start_disk_hits"] >= 1  # the fresh process found the programs the first call made
    assert row["kernels_per_step"] >= 1 and row["peak_bytes_eager"] > 0 and row["peak_bytes_compiled"] >= 0
    assert set(row["faults_per_step"]) == {"genesis eager", "genesis compiled"} | PEER
    assert all(faults >= 0 for faults in row["faults_per_step"].values())


def test_roofline_is_bytes_and_flops_over_the_median(written):
    results, _, _ = written
    (row,) = results["groups"]["fusion"]
    assert row["flops"] == 8 * 1000  # mul add tanh mul neg exp mul add, per element
    assert row["bytes_fused"] == 3 * 1000 * 4 and row["bytes_eager"] > row["bytes_fused"]
    assert set(row["roofline"]) == GENESIS
    for name, point in row["roofline"].items():
        moved = row["bytes_eager"] if name == "genesis eager" else row["bytes_fused"]
        assert point["bytes"] == moved
        assert point["gb_per_s"] == pytest.approx(moved / row["seconds"][name] / 1e9)
        assert point["gflop_per_s"] == pytest.approx(row["flops"] / row["seconds"][name] / 1e9)


def test_markdown_lists_every_case_and_the_machine(written):
    results, _, out = written
    text = (out / "results.md").read_text()
    assert text == markdown(results)
    for case in ("tiny chain", "tiny MLP 8-16-4 b4", "add 64x64 (requires_grad)"):
        assert f"| {case} |" in text
    assert text.startswith("machine: ") and "numpy " + np.__version__ in text and "ceilings: copy" in text
    assert "### Training steps" in text and "### Fused functions" in text and "### Eager, per op" in text


def test_plots_are_png_files(written):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (the bench extra): the plots are skipped")
    _, paths, out = written
    for name in ("train_steps.png", "roofline.png"):
        assert out / name in paths
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_plots_are_skipped_with_a_message(written, tmp_path, monkeypatch, capsys):
    results, _, _ = written
    monkeypatch.setattr(plots, "_pyplot", lambda: None)
    assert suite.save(results, tmp_path) == [tmp_path / "results.json", tmp_path / "results.md"]
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


def test_variants_take_turns_within_every_round():
    calls = []
    timings = measure({name: (lambda name=name: calls.append(name)) for name in "abc"}, rounds=3, min_seconds=0)
    assert {name: len(t.samples) for name, t in timings.items()} == {"a": 3, "b": 3, "c": 3}
    timed = calls[-18:]  # per sample an untimed call and one timed: each round holds every variant, and
    order = [list("abc"), list("bca"), list("cab")]  # each round starts at the next
    assert [timed[i : i + 6] for i in (0, 6, 12)] == [[n for n in names for _ in range(2)] for names in order]


def test_every_sample_starts_after_the_settling_pause(monkeypatch):
    events = []
    monkeypatch.setattr(timing.time, "sleep", lambda seconds: events.append(("sleep", seconds)))
    measure({name: (lambda name=name: events.append(name)) for name in "ab"}, rounds=2, min_seconds=0, settle=0.25)
    timed = events[-12:]  # after the calls that size the samples: a pause, an untimed call, one call
    pause = ("sleep", 0.25)
    assert timed == [pause, "a", "a", pause, "b", "b", pause, "b", "b", pause, "a", "a"]


def test_command_line_writes_the_results(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "QUICK", TINY)
    monkeypatch.setattr(eager, "QUICK", ("add 64x64 (requires_grad)",))
    assert command.main(["--quick", "--only", "eager", "--rounds", "3", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] and results["settings"]["rounds"] == 3 and list(results["groups"]) == ["eager"]
    assert [row["case"] for row in results["groups"]["eager"]] == ["add 64x64 (requires_grad)"]


@pytest.mark.skipif(load_torch() is None, reason="PyTorch is the peer being compared with")
@pytest.mark.parametrize("name", ["LSTM LM v1000 h128 t32 b16", "CNN 32-64 BN 32x32 b64"])
def test_a_training_configs_models_are_the_same_in_both_libraries(name):
    """The benchmark compares like with like: from the same weights, the same first loss."""
    from genesis.bench import train

    ((_, spec, batch_size),) = train.configs([name])
    model, step = train.genesis_setup(spec)
    torch_step = train.torch_setup(load_torch(), spec, model)
    x, y = train.batch(spec, min(batch_size, 4))
    torch = load_torch()
    expected = torch_step(torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())).item()
    assert step(x, y).item() == pytest.approx(expected, rel=1e-5)
