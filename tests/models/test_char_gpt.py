"""examples/char_gpt.py: a few steps of the character-level GPT on a tiny config, eager and compiled."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import genesis

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "char_gpt.py"
TINY = ["--steps", "8", "--batch-size", "4", "--block-size", "16", "--width", "16", "--layers", "2"]
TINY += ["--heads", "2", "--dropout", "0.1", "--lr", "1e-2", "--sample-length", "40", "--log-every", "4"]


def load_example():
    spec = importlib.util.spec_from_file_location("char_gpt", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["char_gpt"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def char_gpt():
    return load_example()


def test_the_text_in_the_repository_is_at_most_a_megabyte(char_gpt):
    assert char_gpt.DATA.stat().st_size <= 1_000_000
    assert (char_gpt.DATA.parent / "README.md").exists()


def test_training_learns_and_compiled_steps_equal_eager(char_gpt, capsys):
    eager = char_gpt.main(TINY)
    compiled = char_gpt.main(TINY + ["--compile"])
    # at initialisation the model's guess is close to uniform over the characters
    assert eager["losses"][0] == pytest.approx(math.log(eager["vocab"]), abs=0.3)
    assert np.mean(eager["losses"][-3:]) < eager["losses"][0] - 0.3
    # the same seeds give the same batches and dropout masks: compiled follows eager step by step
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=1e-5)
    assert compiled["sample"] == eager["sample"]
    sample = eager["sample"]
    assert len(sample) == 41 and set(sample) <= set(char_gpt.DATA.read_text(encoding="utf-8"))
    out = capsys.readouterr().out
    assert "validation loss" in out and "sample:\n" + sample in out


def test_inverse_cdf_sampling_picks_by_cumulative_probability(char_gpt):
    probabilities = np.array([0.25, 0.0, 0.5, 0.25], np.float32)
    picks = [char_gpt.sample_from(probabilities, u) for u in (0.0, 0.2499, 0.25, 0.7499, 0.75, 0.9999)]
    assert picks == [0, 0, 2, 2, 3, 3]  # the character of probability 0 is never drawn
    generator = genesis.Generator().manual_seed(0)
    draws = [char_gpt.sample_from(probabilities, u) for u in genesis.rand(20000, generator=generator).tolist()]
    frequencies = np.bincount(draws, minlength=4) / len(draws)
    # 20000 draws: each frequency is within 0.01 (more than 3 standard deviations) of its probability
    np.testing.assert_allclose(frequencies, probabilities, atol=0.01)
