"""Fused optimizer steps (`fused=`): the compiled update against the op path, bit for bit.

The op path itself is checked against torch.optim in test_optim.py; here every
option that changes the math runs fused and unfused side by side from the same
parameters and gradients, and the two must agree exactly, through the changes a
compiled step has to notice: a parameter that has no gradient on some steps, a
scheduler changing the learning rate, a hyperparameter the update branches on,
state loaded from a checkpoint and a parameter group added mid-run.
"""

import copy

import numpy as np
import pytest
from test_optim import CONFIGS, gradient_of, initial_arrays

import genesis
import genesis.optim
from genesis.optim import optimizer as optimizer_module

f32, f64 = genesis.float32, genesis.float64
STEPS = 6


def make_pair(name, config, dtype, arrays=None):
    arrays = initial_arrays() if arrays is None else arrays
    sides = []
    for fused in (False, True):
        params = [genesis.nn.Parameter(genesis.tensor(a, dtype=dtype)) for a in arrays]
        groups = [{"params": params[:2]}, {"params": params[2:], "lr": config["lr"] * 0.5, "weight_decay": 0.02}]
        sides.append((params, getattr(genesis.optim, name)(groups, **config, fused=fused)))
    return sides


def set_gradients(sides, dtype, step):
    for params, _ in sides:
        for index, param in enumerate(params):
            skip = index == 2 and step % 2 == 1  # no gradient this step: eager skips the parameter
            values = gradient_of(param.detach().numpy().astype(np.float64), index, step)
            param.grad = None if skip else genesis.tensor(values, dtype=dtype)


def assert_same(sides, what, rtol=None):
    """Bit for bit, but for a 0-d parameter: traced, a hyperparameter is a float64 0-d tensor, which
    widens the arithmetic of a 0-d float32 parameter to float64 where eager's Python number does
    not (1 - beta2 meets the gradient): its values differ in the last bits, a few roundings' worth.
    With `rtol`, everything agrees to it instead."""
    (eager, eager_optimizer), (fused, fused_optimizer) = sides
    for index, (e, f) in enumerate(zip(eager, fused)):
        values = [(f"{what}: parameter {index}", f.detach().numpy(), e.detach().numpy())]
        values += [
            (key, fused_optimizer.state[f][key].numpy(), v.numpy()) for key, v in eager_optimizer.state[e].items()
        ]
        for name, got, expected in values:
            if rtol is not None:
                np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * 1e-3, err_msg=name)
            elif e.ndim == 0 and e.dtype is f32:
                np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=name)
            else:
                np.testing.assert_array_equal(got, expected, err_msg=name)


def run_steps(sides, dtype, steps, first=0, rtol=None):
    for step in range(first, first + steps):
        set_gradients(sides, dtype, step)
        for _, optimizer in sides:
            optimizer.step()
        assert_same(sides, f"step {step}", rtol)


@pytest.mark.parametrize("name,config", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_a_fused_step_computes_the_op_paths_bits(name, config):
    sides = make_pair(name, config, f32)
    run_steps(sides, f32, STEPS)
    assert sides[1][1]._fused_step is not None and sides[0][1]._fused_step is None


FLOAT64_CONFIGS = {
    "SGD": dict(lr=0.01, momentum=0.9),
    "Adam": dict(lr=0.01, amsgrad=True),
    "RMSprop": dict(lr=0.01, momentum=0.9),
    "Adagrad": dict(lr=0.01, lr_decay=0.1),
    "Adadelta": dict(lr=1.0, weight_decay=0.1),
    "Adamax": dict(lr=0.01, weight_decay=0.1),
    "NAdam": dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1),
    "RAdam": dict(lr=0.01, betas=(0.9, 0.9)),
}


@pytest.mark.parametrize("name", sorted(FLOAT64_CONFIGS))
def test_a_fused_float64_step_computes_the_op_paths_bits(name):
    # but NAdam's: its momentum schedule takes 0.96 ** (step * momentum_decay), a float64 pow of a
    # fractional exponent, whose C (libm) and numpy (SIMD) kernels differ in the last bit for some steps
    rtol = 1e-13 if name == "NAdam" else None
    run_steps(make_pair(name, FLOAT64_CONFIGS[name], f64), f64, STEPS, rtol=rtol)


def test_radams_switch_to_the_rectified_update_is_a_select_not_a_recompile():
    sides = make_pair("RAdam", dict(lr=0.01), f32)  # beta2 0.999: rectified from step 6 on
    run_steps(sides, f32, 3)
    compiles = sides[1][1]._fused_step.stats["compiles"]
    run_steps(sides, f32, 6, first=3)
    assert sides[1][1]._fused_step.stats["compiles"] == compiles


def test_a_fused_step_follows_schedulers_hyperparameters_checkpoints_and_new_groups():
    sides = make_pair("AdamW", dict(lr=0.01, weight_decay=0.1), f32)
    schedulers = [genesis.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5) for _, optimizer in sides]
    run_steps(sides, f32, 3)
    for scheduler in schedulers:
        scheduler.step()
        scheduler.step()
    run_steps(sides, f32, 2, first=3)
    for _, optimizer in sides:  # a value the update branches on: the compiled step traces anew
        optimizer.param_groups[0]["amsgrad"] = True
        optimizer.param_groups[1]["weight_decay"] = 0.0
    run_steps(sides, f32, 2, first=5)
    saved = copy.deepcopy(sides[0][1].state_dict())
    for params, optimizer in sides:
        optimizer.load_state_dict(copy.deepcopy(saved))
    run_steps(sides, f32, 2, first=7)
    extra = np.random.default_rng(5).standard_normal((4, 3))
    for params, optimizer in sides:
        params.append(genesis.nn.Parameter(genesis.tensor(extra, dtype=f32)))
        optimizer.add_param_group({"params": [params[-1]], "lr": 0.003})
    run_steps(sides, f32, 3, first=9)
    assert sides[1][1]._fused_step.stats["compiles"] >= 3


def test_fused_by_default_where_it_pays():
    big = [np.zeros((256, 256))]
    small = [np.zeros((8, 8))]
    for arrays, dtype, fused in [(big, f32, True), (small, f32, False), (big, genesis.float16, False)]:
        param = genesis.nn.Parameter(genesis.tensor(arrays[0], dtype=dtype))
        optimizer = genesis.optim.Adam([param])
        param.grad = genesis.ones_like(param)
        optimizer.step()
        assert (optimizer._fused_step is not None) is fused, (arrays[0].shape, dtype)
    param = genesis.nn.Parameter(genesis.zeros(256, 256))
    for options in (dict(fused=False), dict(foreach=False)):
        optimizer = genesis.optim.SGD([param], lr=0.1, **options)
        param.grad = genesis.ones_like(param)
        optimizer.step()
        assert optimizer._fused_step is None
    assert optimizer_module.FUSED_FROM <= 256 * 256


@pytest.mark.parametrize("name", ["Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"])
def test_the_newer_optimizers_fuse_by_default_where_it_pays(name):
    param = genesis.nn.Parameter(genesis.zeros(256, 256))
    optimizer = getattr(genesis.optim, name)([param], lr=0.1)
    param.grad = genesis.ones_like(param)
    optimizer.step()
    assert optimizer._fused_step is not None


def test_lbfgs_never_fuses():
    param = genesis.nn.Parameter(genesis.zeros(256, 256))
    optimizer = genesis.optim.LBFGS([param], max_iter=2)

    def closure():
        optimizer.zero_grad()
        loss = (param - 1.0).square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    assert optimizer._fused_step is None and optimizer.fused is False
    assert np.all(param.detach().numpy() > 0)  # moved towards the minimum, by the eager ops


def test_fused_and_foreach_cannot_both_be_true():
    with pytest.raises(RuntimeError, match="cannot be `True` together"):
        genesis.optim.Adam([genesis.nn.Parameter(genesis.zeros(2))], fused=True, foreach=True)


def test_a_copy_of_a_fused_optimizer_updates_its_own_parameters():
    param = genesis.nn.Parameter(genesis.ones(3, 4))
    optimizer = genesis.optim.SGD([param], lr=0.5, fused=True)
    param.grad = genesis.ones_like(param)
    optimizer.step()
    optimizer.step()  # the second step confirms the compiled update
    model_copy = copy.deepcopy({"param": param, "optimizer": optimizer})
    copied, copied_optimizer = model_copy["param"], model_copy["optimizer"]
    copied.grad = genesis.ones_like(copied)
    copied_optimizer.step()
    np.testing.assert_array_equal(param.detach().numpy(), np.zeros((3, 4), np.float32))
    np.testing.assert_array_equal(copied.detach().numpy(), np.full((3, 4), -0.5, np.float32))


def test_a_fused_optimizer_inside_a_compiled_step_is_traced_as_ops():
    rng = np.random.default_rng(0)
    x = genesis.tensor(rng.standard_normal((16, 8)).astype(np.float32))
    results = []
    for compiled in (False, True):
        genesis.manual_seed(0)
        model = genesis.nn.Linear(8, 4)
        optimizer = genesis.optim.Adam(model.parameters(), lr=0.01, fused=True)

        def step():
            optimizer.zero_grad()
            loss = model(x).square().mean()
            loss.backward()
            optimizer.step()
            return loss

        run = genesis.compile(step) if compiled else step
        for _ in range(3):
            run()
        results.append(model.weight.detach().numpy())
        assert (optimizer._fused_step is None) is compiled  # the compiled step fused the update itself
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-7)
