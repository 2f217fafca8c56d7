"""Learning-rate schedulers against torch.optim.lr_scheduler.

Each scheduler, in several configurations, drives a genesis optimizer while
the torch scheduler of the same name drives a torch optimizer with the same
two parameter groups; over 200 steps the rates (and OneCycleLR's momentum or
beta1) must agree to 1e-12 relative (they are the same float operations, so
in practice they are equal). A scheduler and optimizer restored from state
dicts part-way must then continue exactly as an uninterrupted run.
get_cosine_schedule_with_warmup is compared with a torch LambdaLR running
the transformers formula written out here.
"""

import math
import warnings

import numpy as np
import pytest
import torch

import genesis
import genesis.optim
from genesis.optim import lr_scheduler as G

T = torch.optim.lr_scheduler
STEPS = 200
LRS = (0.1, 0.03)


def make_optimizer(lib, kind="SGD"):
    """Two groups with different rates; parameters never get gradients, so step() only counts."""
    if lib is torch:
        params = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
        optim = torch.optim
    else:
        params = [genesis.zeros(3, requires_grad=True), genesis.zeros(2, requires_grad=True)]
        optim = genesis.optim
    groups = [{"params": [params[0]], "lr": LRS[0]}, {"params": [params[1]], "lr": LRS[1]}]
    if kind == "SGD":
        return optim.SGD(groups, lr=LRS[0], momentum=0.9)
    return optim.Adam(groups, lr=LRS[0], betas=(0.9, 0.99))


def cosine_with_warmup_reference(num_warmup_steps, num_training_steps, num_cycles=0.5):
    """The transformers formula, written out independently of genesis."""

    def factor(step):
        if step < num_warmup_steps:
            return float(step) / float(max(1, num_warmup_steps))
        progress = float(step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))

    return factor


def linear_decay(epoch):
    return 1.0 / (1.0 + 0.05 * epoch)


def per_group_lambdas(epoch):
    return 0.97**epoch


def sequential(m, opt):
    first = m.LinearLR(opt, start_factor=0.1, total_iters=10)
    second = m.CosineAnnealingLR(opt, T_max=60, eta_min=1e-4)
    third = m.StepLR(opt, step_size=25, gamma=0.5)
    return m.SequentialLR(opt, [first, second, third], milestones=[10, 70])


def sequential_exponential(m, opt):
    first = m.ConstantLR(opt, factor=0.5, total_iters=7)
    second = m.ExponentialLR(opt, gamma=0.98)
    return m.SequentialLR(opt, [first, second], milestones=[30])


def warmup(num_warmup_steps, num_training_steps, num_cycles=0.5):
    def build(m, opt):
        if m is G:
            return G.get_cosine_schedule_with_warmup(opt, num_warmup_steps, num_training_steps, num_cycles)
        return T.LambdaLR(opt, cosine_with_warmup_reference(num_warmup_steps, num_training_steps, num_cycles))

    return build


# (id, optimizer kind, factory(module, optimizer))
SCHEDULERS = [
    ("lambda", "SGD", lambda m, o: m.LambdaLR(o, linear_decay)),
    ("lambda-per-group", "SGD", lambda m, o: m.LambdaLR(o, [linear_decay, per_group_lambdas])),
    ("multiplicative", "SGD", lambda m, o: m.MultiplicativeLR(o, lambda e: 0.99 if e % 3 else 0.9)),
    ("step", "SGD", lambda m, o: m.StepLR(o, step_size=30)),
    ("step-gamma", "Adam", lambda m, o: m.StepLR(o, step_size=7, gamma=0.7)),
    ("multistep", "SGD", lambda m, o: m.MultiStepLR(o, milestones=[20, 50, 50, 120], gamma=0.3)),
    ("exponential", "SGD", lambda m, o: m.ExponentialLR(o, gamma=0.97)),
    ("cosine", "SGD", lambda m, o: m.CosineAnnealingLR(o, T_max=200)),
    ("cosine-eta-min-restart", "SGD", lambda m, o: m.CosineAnnealingLR(o, T_max=37, eta_min=0.002)),
    ("linear", "SGD", lambda m, o: m.LinearLR(o)),
    ("linear-down", "Adam", lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=150)),
    ("constant", "SGD", lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=40)),
    ("onecycle-sgd", "SGD", lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=STEPS)),
    (
        "onecycle-adam-linear",
        "Adam",
        lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=STEPS + 10, anneal_strategy="linear", pct_start=0.25),
    ),
    (
        "onecycle-three-phase",
        "Adam",
        lambda m, o: m.OneCycleLR(
            o,
            max_lr=0.4,
            epochs=4,
            steps_per_epoch=50,
            three_phase=True,
            div_factor=10.0,
            final_div_factor=100.0,
            base_momentum=0.8,
            max_momentum=0.9,
        ),
    ),
    (
        "onecycle-no-momentum",
        "SGD",
        lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=STEPS, cycle_momentum=False, pct_start=0.1),
    ),
    ("sequential", "SGD", sequential),
    ("sequential-exponential", "Adam", sequential_exponential),
    ("warmup-cosine", "SGD", warmup(20, STEPS)),
    ("warmup-cosine-cycles", "Adam", warmup(35, 150, num_cycles=2.0)),
]


def group_values(opt):
    """What a scheduler may change: lr, and momentum or beta1."""
    out = []
    for group in opt.param_groups:
        out.append(group["lr"])
        out.append(group["momentum"] if "momentum" in group else group["betas"][0])
    return out


def assert_same(actual, expected, what):
    assert len(actual) == len(expected), what
    for a, e in zip(actual, expected):
        assert a == pytest.approx(e, rel=1e-12, abs=1e-15), f"{what}: {actual} != {expected}"


def run(m, kind, factory, steps=STEPS):
    lib = genesis if m is G else torch
    opt = make_optimizer(lib, kind)
    scheduler = factory(m, opt)
    history = [list(scheduler.get_last_lr()) + group_values(opt)]
    for _ in range(steps):
        opt.step()
        scheduler.step()
        history.append(list(scheduler.get_last_lr()) + group_values(opt))
    return history


@pytest.mark.parametrize("case", SCHEDULERS, ids=[case[0] for case in SCHEDULERS])
def test_matches_torch(case):
    _, kind, factory = case
    genesis_history, torch_history = run(G, kind, factory), run(T, kind, factory)
    for step, (a, e) in enumerate(zip(genesis_history, torch_history)):
        assert_same(a, e, f"step {step}")
    assert len(set(map(tuple, genesis_history))) > 1  # the schedule really moves


@pytest.mark.parametrize("case", SCHEDULERS, ids=[case[0] for case in SCHEDULERS])
def test_resume_from_state_dicts(case):
    """Save the optimizer and the scheduler part-way, restore both into new objects, continue identically."""
    _, kind, factory = case
    expected = run(G, kind, factory)
    opt = make_optimizer(genesis, kind)
    scheduler = factory(G, opt)
    cut = 83
    for _ in range(cut):
        opt.step()
        scheduler.step()
    opt_state, scheduler_state = opt.state_dict(), scheduler.state_dict()
    for _ in range(5):  # the originals go on: the saved dicts are copies where it matters
        opt.step()
        scheduler.step()

    new_opt = make_optimizer(genesis, kind)
    new_scheduler = factory(G, new_opt)  # built before loading, as PyTorch advises
    new_opt.load_state_dict(opt_state)
    new_scheduler.load_state_dict(scheduler_state)
    assert_same(new_scheduler.get_last_lr() + group_values(new_opt), expected[cut], "restored")
    for step in range(cut + 1, STEPS + 1):
        new_opt.step()
        new_scheduler.step()
        assert_same(list(new_scheduler.get_last_lr()) + group_values(new_opt), expected[step], f"step {step}")


@pytest.mark.filterwarnings("ignore:The epoch parameter")
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("StepLR", dict(step_size=4, gamma=0.5)),
        ("MultiStepLR", dict(milestones=[3, 3, 9])),
        ("ExponentialLR", dict(gamma=0.9)),
        ("CosineAnnealingLR", dict(T_max=13, eta_min=0.01)),
        ("LinearLR", dict(start_factor=0.2, total_iters=6)),
        ("ConstantLR", dict(factor=0.3, total_iters=5)),
    ],
)
def test_closed_form_with_an_epoch(name, kwargs):
    """step(epoch) (deprecated in PyTorch) jumps with the closed form."""
    genesis_opt, torch_opt = make_optimizer(genesis), make_optimizer(torch)
    genesis_sched, torch_sched = getattr(G, name)(genesis_opt, **kwargs), getattr(T, name)(torch_opt, **kwargs)
    for epoch in (3, 4, 9, 2, 15, 40):
        genesis_opt.step()
        torch_opt.step()
        genesis_sched.step(epoch)
        torch_sched.step(epoch)
        assert_same(genesis_sched.get_last_lr(), torch_sched.get_last_lr(), f"epoch {epoch}")


def metric_sequence(length=200, seed=0):
    """A noisy loss curve with plateaus, so the scheduler both waits and cuts."""
    rng = np.random.default_rng(seed)
    values, level = [], 1.0
    for step in range(length):
        if step % 40 < 15:
            level *= 0.97
        values.append(level * (1.0 + 0.01 * rng.standard_normal()))
    return values


@pytest.mark.parametrize(
    "kwargs,sign",
    [
        (dict(), 1),
        (dict(patience=3, factor=0.5), 1),
        (dict(patience=2, factor=0.5, threshold=0.02, threshold_mode="abs", cooldown=4), 1),
        (dict(mode="max", patience=4, factor=0.3, min_lr=[0.01, 0.001]), -1),
        (dict(mode="max", patience=1, threshold_mode="abs", threshold=0.001, min_lr=0.005, cooldown=2), -1),
        (dict(patience=0, factor=0.9, eps=0.002), 1),  # stops cutting once a cut would be smaller than eps
    ],
)
def test_reduce_on_plateau_matches_torch(kwargs, sign):
    metrics = [sign * value for value in metric_sequence()]
    genesis_opt, torch_opt = make_optimizer(genesis), make_optimizer(torch)
    genesis_sched = G.ReduceLROnPlateau(genesis_opt, **kwargs)
    torch_sched = T.ReduceLROnPlateau(torch_opt, **kwargs)
    cuts = 0
    for step, metric in enumerate(metrics):
        before = genesis_sched.get_last_lr()
        genesis_sched.step(genesis.tensor(metric, dtype=genesis.float64) if step % 2 else metric)  # 0-d tensor or float
        torch_sched.step(metric)
        assert_same(genesis_sched.get_last_lr(), torch_sched.get_last_lr(), f"step {step}")
        assert (genesis_sched.num_bad_epochs, genesis_sched.cooldown_counter, genesis_sched.best) == (
            torch_sched.num_bad_epochs,
            torch_sched.cooldown_counter,
            torch_sched.best,
        )
        cuts += genesis_sched.get_last_lr() != before
        if step == 120:  # resume from a state dict in the middle
            state = genesis_sched.state_dict()
            genesis_sched = G.ReduceLROnPlateau(genesis_opt)
            genesis_sched.load_state_dict(state)
    assert cuts >= 2


def test_lambda_state_dict_omits_functions_but_keeps_callable_objects():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate**epoch

    opt = make_optimizer(genesis)
    scheduler = G.LambdaLR(opt, [linear_decay, Decay(0.9)])
    for _ in range(3):
        opt.step()
        scheduler.step()
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [None, {"rate": 0.9}] and "optimizer" not in state
    fresh_opt = make_optimizer(genesis)
    restored = G.LambdaLR(fresh_opt, [linear_decay, Decay(0.5)])
    restored.load_state_dict(state)
    assert restored.lr_lambdas[1].rate == 0.9 and restored.last_epoch == 3
    fresh_opt.step()
    restored.step()
    opt.step()
    scheduler.step()
    assert restored.get_last_lr() == scheduler.get_last_lr()


def test_warns_when_stepped_before_the_optimizer():
    opt = make_optimizer(genesis)
    scheduler = G.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        scheduler.step()
    opt2 = make_optimizer(genesis)
    scheduler2 = G.StepLR(opt2, step_size=2)
    opt2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler2.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        scheduler2.get_lr()


def test_constructor_errors():
    opt = make_optimizer(genesis)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        G.StepLR(object(), step_size=3)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        G.LambdaLR(opt, [linear_decay])
    with pytest.raises(KeyError, match="initial_lr"):
        G.ExponentialLR(make_optimizer(genesis), gamma=0.9, last_epoch=5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        G.ConstantLR(opt, factor=1.5)
    with pytest.raises(ValueError, match="total_steps OR"):
        G.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="max_lr must have the same length"):
        G.OneCycleLR(opt, max_lr=[0.1, 0.2, 0.3], total_steps=10)
    with pytest.raises(ValueError, match="anneal_strategy"):
        G.OneCycleLR(opt, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        G.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="unknown"):
        G.ReduceLROnPlateau(opt, mode="middle")
    with pytest.raises(ValueError, match="number of milestone points"):
        G.SequentialLR(opt, [G.StepLR(opt, 3), G.StepLR(opt, 4)], milestones=[])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        G.SequentialLR(opt, [G.StepLR(opt, 3), G.ReduceLROnPlateau(opt)], milestones=[5])
    one_cycle = G.OneCycleLR(make_optimizer(genesis), max_lr=0.1, total_steps=3)
    one_cycle.optimizer.step()
    for _ in range(3):
        one_cycle.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        one_cycle.step()


def test_chained_scheduler_matches_torch():
    def build(m, opt):
        return m.ChainedScheduler([m.ExponentialLR(opt, gamma=0.98), m.StepLR(opt, step_size=17, gamma=0.5)])

    for step, (a, e) in enumerate(zip(run(G, "SGD", build), run(T, "SGD", build))):
        assert_same(a, e, f"step {step}")
