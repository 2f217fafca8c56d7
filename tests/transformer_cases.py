"""What the attention and transformer tests share: inputs, masks of each kind, and the comparison of a
genesis module with torch's, whose state_dict it loads as is.

`compare` runs both modules on the same inputs and masks, backpropagates the same random cotangent
and compares the outputs and the gradients of the inputs and of every parameter.
"""

import numpy as np
import torch

import genesis
import genesis.nn as nn

# float32 throughout. A layer's output is layer-normalised (values of order 1) after sums of
# d_model-long and dim_feedforward-long products, a few layers deep: each step adds a few ulps
# (2**-24 relative), so 1e-5 relative and absolute leaves a margin for any BLAS's summation order.
# Gradients add up over batch * length positions as well: 1e-5 of their largest magnitude.
RTOL = 1e-5

D_MODEL, NHEAD, FEEDFORWARD = 8, 2, 16
BATCH, SRC_LEN, TGT_LEN = 3, 5, 4


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def values(x):
    if isinstance(x, torch.Tensor):
        return x.detach().double().numpy()
    return x.detach().numpy().astype(np.float64) if isinstance(x, genesis.Tensor) else x


def assert_near(actual, expected, what, scale=None):
    actual, expected = values(actual), values(expected)
    atol = RTOL * (float(np.nanmax(np.abs(expected))) if scale is None else scale)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, err_msg=what, equal_nan=True)


def load_torch_state(g_module, t_module):
    state = {name: genesis.tensor(value.detach().numpy()) for name, value in t_module.state_dict().items()}
    assert list(g_module.state_dict()) == list(state)
    g_module.load_state_dict(state)


def pair(array, grad=True):
    g, t = genesis.tensor(array), torch.tensor(array)
    if grad and array.dtype != bool:
        g.requires_grad, t.requires_grad = True, True
    return g, t


def compare(g_module, t_module, inputs, masks, *, train=False, call=None):
    """inputs: float arrays (differentiated); masks: name -> array or bool flag (passed as is)."""
    load_torch_state(g_module, t_module)
    g_module.train(train)
    t_module.train(train)
    g_args, t_args = zip(*(pair(a) for a in inputs))
    g_masks, t_masks = {}, {}
    for name, value in masks.items():
        if isinstance(value, np.ndarray):
            g_masks[name], t_masks[name] = pair(value, grad=False)
        else:
            g_masks[name] = t_masks[name] = value
    call = call or (lambda module, args, kwargs: module(*args, **kwargs))
    g_out, t_out = call(g_module, g_args, g_masks), call(t_module, t_args, t_masks)
    assert_near(g_out, t_out, "output")
    cotangent = rand(*t_out.shape, seed=9)
    (g_out * genesis.tensor(cotangent)).sum().backward()
    (t_out * torch.tensor(cotangent)).sum().backward()
    for i, (g, t) in enumerate(zip(g_args, t_args)):
        assert_near(g.grad, t.grad, f"gradient of input {i}")
    t_params = dict(t_module.named_parameters())
    for name, p in g_module.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        assert_near(p.grad, t_params[name].grad, f"gradient of {name}")
    return g_out


def sequence(length, batch_first, seed):
    return rand(BATCH, length, D_MODEL, seed=seed) if batch_first else rand(length, BATCH, D_MODEL, seed=seed)


def padding(length, as_float, seed, blind=False):
    """Key padding: the ends of two sequences; with `blind`, all of the middle one, whose queries
    then see no key (PyTorch's attention gives them a zero output, not NaN)."""
    mask = np.zeros((BATCH, length), dtype=bool)
    mask[0, -2:] = True
    mask[2, -1] = True
    mask[1] = blind
    if not as_float:
        return mask
    # a float padding mask adds its values: -inf where padded, finite biases elsewhere
    return np.where(mask, -np.inf, rand(BATCH, length, seed=seed)).astype(np.float32)


def attention_mask(kind, length, source_length, seed):
    """The attn_mask kinds PyTorch takes: float (L, S) and (N*H, L, S), bool (True = hidden), causal."""
    if kind == "float":
        return rand(length, source_length, seed=seed)
    if kind == "float3d":
        return rand(BATCH * NHEAD, length, source_length, seed=seed)
    if kind == "bool":
        hidden = np.random.default_rng(seed).random((length, source_length)) < 0.3
        hidden[:, 0] = False  # every query keeps a key
        return hidden
    assert kind == "causal"
    return nn.Transformer.generate_square_subsequent_mask(length).numpy()


def make(cls_name, *args, seed=0, **kwargs):
    torch.manual_seed(seed)
    return getattr(nn, cls_name)(*args, **kwargs), getattr(torch.nn, cls_name)(*args, **kwargs)
