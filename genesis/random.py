"""Reproducible random numbers: `Generator`, `manual_seed` and the default generator.

A Generator wraps numpy's PCG64 bit generator; its whole state can be read and
restored, so a checkpoint can resume a random stream exactly.
"""

from __future__ import annotations

import numpy as np

from genesis import dispatch


class Generator:
    def __init__(self, device="cpu"):
        self.device = device
        self.manual_seed(np.random.SeedSequence().entropy % (2**63))

    def manual_seed(self, seed: int) -> Generator:
        seed = int(seed)
        self._seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed & (2**64 - 1)))
        return self

    def seed(self) -> int:
        seed = int(np.random.SeedSequence().entropy % (2**63))
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        return {"seed": self._seed, "bit_generator": self._rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self._seed = state["seed"]
        self._rng = np.random.Generator(np.random.PCG64())
        self._rng.bit_generator.state = state["bit_generator"]

    @property
    def numpy(self) -> np.random.Generator:
        return self._rng


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> dict:
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    default_generator.set_state(state)


def rng(generator: Generator | None) -> np.random.Generator:
    """The numpy generator behind a draw of integers. While a function is traced such a draw would be
    baked into the graph and repeat on every call, so it breaks the graph instead (rand and randn are
    op-table primitives with a seed input: they trace)."""
    dispatch.untraceable("drawing random integers or permutations (randint, randperm)")
    return _numpy_rng(generator)


def _numpy_rng(generator: Generator | None) -> np.random.Generator:
    return (generator or default_generator).numpy


def draw_seed(generator: Generator | None) -> int:
    """A seed for one draw of the random ops (genesis.ops.random), from the generator's stream."""
    return int(_numpy_rng(generator).integers(0, 2**63))
