"""One model in PyTorch and in genesis, with the same numbers: shared by the model tests.

Each model test builds a network in both libraries from the same code, copies
PyTorch's state_dict into genesis's, trains both on the same batches and
compares the losses of every step and the parameters at the end.
"""

import numpy as np
import torch

import genesis


def copy_torch_state(g_model, t_model):
    """Load PyTorch's parameters and buffers (BatchNorm's running statistics too) into genesis's model."""
    state = {name: genesis.tensor(value.detach().numpy().copy()) for name, value in t_model.state_dict().items()}
    g_model.load_state_dict(state)


def as_pair(array):
    """The same float32 (or int64) values as a genesis tensor and a torch tensor."""
    return genesis.tensor(array), torch.from_numpy(array.copy())


def step_function(mode, step, backend=None):
    """The training step as the test runs it: eagerly, or compiled into one program by genesis.compile."""
    return step if mode == "eager" else genesis.compile(step, backend=backend)


def assert_states_close(g_model, t_model, rtol, atol):
    """Every parameter and buffer, by name, against PyTorch's."""
    expected = t_model.state_dict()
    got = g_model.state_dict()
    assert list(got) == list(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(
            np.asarray(got[name].numpy(), dtype=np.float64),
            value.detach().numpy().astype(np.float64),
            rtol=rtol,
            atol=atol,
            err_msg=name,
        )
