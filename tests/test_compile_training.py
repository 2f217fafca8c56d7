"""Whole training steps compiled: forward, backward, clipping, GradScaler and the optimizer in one graph.

Each test runs the same step eagerly on one copy of a model and compiled on
another, side by side, and compares losses and parameters: an MLP, a CNN on
the digits, and a transformer block, over 50 steps; with fp16/bf16 autocast;
through an inf gradient that GradScaler must skip; across a checkpoint and
resume; and under a scheduler that changes the learning rate every step
without a recompile.
"""

import numpy as np
import pytest

import genesis
from genesis import nn
from genesis.amp import GradScaler, autocast
from genesis.nn import utils as nn_utils

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


class Block(nn.Module):
    """A pre-norm transformer block: attention and a GELU MLP, each with a residual."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return self.head(x.mean(dim=1))


def mlp():
    return nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 3))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 10)
    )


def digits(count, batch=32):
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return [(images[i * batch : (i + 1) * batch], data.target[i * batch : (i + 1) * batch]) for i in range(count)]


def random_batches(count, shape, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape).astype(np.float32), rng.integers(0, classes, shape[0])) for _ in range(count)]


class Setup:
    """A model, its optimizer, a scaler and a scheduler, made identically each time (in `dtype`, if given)."""

    def __init__(self, make_model, optimizer="adamw", scaler=False, lr=1e-2, dtype=None):
        genesis.manual_seed(0)
        self.model = make_model()
        if dtype is not None:
            self.model.to(dtype)
        params = self.model.parameters()
        self.optimizer = (
            genesis.optim.AdamW(params, lr=lr)
            if optimizer == "adamw"
            else genesis.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
        )
        self.scaler = GradScaler(init_scale=2.0**10, growth_interval=4, enabled=scaler)
        self.scheduler = genesis.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=60)


def train_step(setup, x, y, amp=None, clip=1.0):
    setup.optimizer.zero_grad()
    with autocast(enabled=amp is not None, dtype=amp or genesis.float16):
        loss = nn.functional.cross_entropy(setup.model(x), y)
    setup.scaler.scale(loss).backward()
    setup.scaler.unscale_(setup.optimizer)
    nn_utils.clip_grad_norm_(setup.model.parameters(), clip)
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    return loss


def plain_step(model, optimizer):
    """A training step without AMP or clipping: zero_grad, forward, backward, step."""

    def step(x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


# Autocast's tolerances, from the dtype and the number of steps. Eager and compiled AMP round the same
# values to the same dtype, but a matmul's fp32 sum may be added up in another order when its operands
# arrive in another layout (OpenBLAS's SkylakeX kernels do that, its Haswell ones do not), and then now
# and then a value rounds to the neighbouring fp16/bf16 one: a relative difference of one ulp, 2u, in
# that element, where u is the dtype's unit roundoff.
UNIT_ROUNDOFF = {genesis.float16: 2.0**-11, genesis.bfloat16: 2.0**-8}


class AmpBounds:
    """How far compiled AMP may drift from eager AMP, and why.

    - loss: a mean of log-softmax terms of logits rounded to the dtype; logits a rounding apart move it
      by about u relative at most.
    - parameters: AdamW moves a parameter by lr * m / (sqrt(v) + eps) a step, a normalised step of
      size about 1; a gradient a rounding (or a few) apart changes that step's direction by about u
      of its size, so the two trajectories part by at most about lr * u a step, steps * lr * u after
      `steps` steps when every step's difference adds up.
    - gradients: a linear layer's gradient passes through two roundings (its input's, saved in the
      forward, and the incoming gradient's), so a model of L layers' gradients differ by 2 L u of
      their size; the parameters' drift adds far less.
    """

    def __init__(self, setup, amp, steps):
        u = UNIT_ROUNDOFF[amp]
        lr = setup.optimizer.param_groups[0]["lr"]  # the schedule only lowers it
        layers = sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in setup.model.modules())
        self.loss = u
        self.parameters = steps * lr * u
        self.gradients = 2 * layers * u


def run_side_by_side(
    make_model, batches, *, amp=None, scaler=False, optimizer="adamw", rtol=1e-5, loss_rtol=1e-5, backend=None
):
    """Train a copy eagerly and a copy compiled on the same batches; compare each step's loss, then the
    parameters and the last step's gradients: to `rtol`/`loss_rtol` in fp32, to AmpBounds under autocast."""
    eager, fused = Setup(make_model, optimizer, scaler), Setup(make_model, optimizer, scaler)
    bounds = None if amp is None else AmpBounds(eager, amp, len(batches))
    step = genesis.compile(lambda x, y: train_step(fused, x, y, amp), backend=backend)
    for x, y in batches:
        x, y = genesis.tensor(x), genesis.tensor(y)
        expected = train_step(eager, x, y, amp).item()
        got = step(x, y).item()
        eager.scheduler.step()
        fused.scheduler.step()
        assert got == pytest.approx(expected, rel=loss_rtol if bounds is None else bounds.loss, nan_ok=True)
    for (name, a), b in zip(eager.model.named_parameters(), fused.model.parameters()):
        expected_grad = a.grad.numpy()
        if bounds is None:
            param_rtol, param_atol = rtol, rtol * 1e-2
            grad_rtol, grad_atol = rtol, rtol * float(np.abs(expected_grad).max())
        else:
            param_rtol, param_atol = 0.0, bounds.parameters
            grad_rtol, grad_atol = 0.0, bounds.gradients * float(np.abs(expected_grad).max())
        np.testing.assert_allclose(
            b.detach().numpy(), a.detach().numpy(), rtol=param_rtol, atol=param_atol, err_msg=name
        )
        # the gradients the last step left, which eager code after the step reads (zero_grad drops the
        # ones of the call before, also where the first call traced without any)
        np.testing.assert_allclose(
            b.grad.numpy(), expected_grad, rtol=grad_rtol, atol=grad_atol, err_msg=f"{name}.grad"
        )
    assert eager.scaler.get_scale() == fused.scaler.get_scale()
    return step, eager, fused


def train_in_float64(make_model, batches, optimizer="adamw"):
    """The same training without autocast and in float64: near exact arithmetic, for reference."""
    setup = Setup(make_model, optimizer, dtype=genesis.float64)
    for x, y in batches:
        train_step(setup, genesis.tensor(x.astype(np.float64)), genesis.tensor(y))
        setup.scheduler.step()
    return setup


def test_mlp_50_steps_fp32_match_eager_and_the_scheduler_causes_no_recompile():
    step, _, _ = run_side_by_side(mlp, random_batches(50, (16, 12)))
    assert step.stats["compiles"] == 1
    # the second call traces once more (the optimizer made its state on the first): nothing after
    assert step.stats["recompiles"] <= 1 and step.stats["cache_hits"] >= 48
    assert step.stats["fallbacks"] == []


def test_cnn_on_digits_50_steps_with_sgd_nesterov():
    run_side_by_side(cnn, digits(50), optimizer="sgd")


def test_transformer_block_50_steps():
    # SGD: the key projection's bias has a gradient of exactly zero in theory (softmax ignores a constant
    # added to every key), so its computed gradient is rounding noise that Adam would normalise into steps
    run_side_by_side(Block, random_batches(50, (4, 5, 16)), optimizer="sgd", rtol=2e-5)


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("amp", [genesis.float16, genesis.bfloat16], ids=["fp16", "bf16"])
def test_autocast_steps_match_eager_amp(amp, backend):
    batches = random_batches(20, (16, 12))
    _, eager, fused = run_side_by_side(mlp, batches, amp=amp, scaler=amp is genesis.float16, backend=backend)
    # The bound is tight enough to matter: AMP's own distance from exact arithmetic is larger (2.4 times
    # the bound in fp16, 26 times in bf16), so a compiled step that skipped autocast's roundings, and so
    # ran near the exact trajectory, would fail it.
    exact, amp_eager, amp_compiled = (
        np.concatenate([p.detach().to(genesis.float64).numpy().ravel() for p in setup.model.parameters()])
        for setup in (train_in_float64(mlp, batches), eager, fused)
    )
    bound = AmpBounds(Setup(mlp), amp, len(batches)).parameters
    eager_error = np.abs(amp_eager - exact).max()
    assert eager_error > bound
    # and compiled AMP is as close to exact arithmetic as eager AMP is, within the bound
    assert np.abs(amp_compiled - exact).max() <= eager_error + bound


def test_an_inf_gradient_is_skipped_exactly_as_eager_gradscaler_skips_it():
    batches = random_batches(10, (16, 12))
    batches[3] = (batches[3][0] * np.float32("inf"), batches[3][1])
    batches[7] = (np.full_like(batches[7][0], np.nan), batches[7][1])
    _, eager, fused = run_side_by_side(mlp, batches, amp=genesis.float16, scaler=True)
    assert fused.scaler.get_scale() == eager.scaler.get_scale() < 2.0**10 * 2  # backed off twice
    step_count = fused.optimizer.state[next(iter(fused.model.parameters()))]["step"]
    assert step_count.item() == 8  # two of ten steps were skipped


def test_checkpoint_and_resume_in_the_middle_of_compiled_training(tmp_path):
    batches = [(genesis.tensor(x), genesis.tensor(y)) for x, y in random_batches(12, (16, 12))]
    path = tmp_path / "step.safetensors"

    def run(stop=None, resume=False):
        setup = Setup(mlp, scaler=True)
        step = genesis.compile(lambda x, y: train_step(setup, x, y, genesis.float16))
        start = 0
        if resume:
            state = genesis.load_checkpoint(path)
            setup.model.load_state_dict(state["model"])
            setup.optimizer.load_state_dict(state["optimizer"])
            setup.scaler.load_state_dict(state["scaler"])
            setup.scheduler.load_state_dict(state["scheduler"])
            start = state["step"]
        losses = []
        for i in range(start, len(batches)):
            if i == stop:
                genesis.save_checkpoint(
                    {
                        "model": setup.model.state_dict(),
                        "optimizer": setup.optimizer.state_dict(),
                        "scaler": setup.scaler.state_dict(),
                        "scheduler": setup.scheduler.state_dict(),
                        "step": i,
                    },
                    path,
                )
                return setup, losses
            losses.append(step(*batches[i]).item())
            setup.scheduler.step()
        return setup, losses

    straight, all_losses = run()
    _, first = run(stop=5)
    resumed, second = run(resume=True)
    assert first + second == all_losses
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())


def test_gradients_accumulate_across_calls_without_zero_grad():
    genesis.manual_seed(0)
    model = mlp()
    params = list(model.parameters())
    x, y = (genesis.tensor(v) for v in random_batches(1, (8, 12))[0])
    compiled = genesis.compile(lambda: nn.functional.cross_entropy(model(x), y).backward())
    compiled()
    compiled()
    twice = [p.grad.numpy().copy() for p in params]
    for p in params:
        p.grad = None
    nn.functional.cross_entropy(model(x), y).backward()
    nn.functional.cross_entropy(model(x), y).backward()
    for got, p in zip(twice, params):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_options_add_autocast_loss_scaling_and_clipping_to_a_plain_step():
    batches = random_batches(12, (16, 12))
    batches[4] = (batches[4][0] * np.float32("inf"), batches[4][1])
    eager = Setup(mlp, scaler=True)
    eager.scaler = GradScaler()  # the options' scaler has GradScaler's defaults
    plain = Setup(mlp)

    def plain_step(x, y):
        plain.optimizer.zero_grad()
        loss = nn.functional.cross_entropy(plain.model(x), y)
        loss.backward()
        plain.optimizer.step()
        return loss

    step = genesis.compile(plain_step, amp="fp16", loss_scale="dynamic", clip_grad_norm=0.5)
    for x, y in batches:
        x, y = genesis.tensor(x), genesis.tensor(y)
        expected = train_step(eager, x, y, genesis.float16, clip=0.5).item()
        assert step(x, y).item() == pytest.approx(expected, rel=1e-6, nan_ok=True)
    # eager makes a linear layer's weight gradient in weight.T's layout, the program in its own, and
    # a BLAS kernel may sum the two in different orders (OpenBLAS's Haswell kernel does): gradients a
    # few float32 ulps apart, which 11 Adam steps at lr 1e-2 carry into the parameters (7e-7 seen)
    for a, b in zip(eager.model.parameters(), plain.model.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert step.fn.scaler.get_scale() == eager.scaler.get_scale() == 2.0**15
    assert step.stats["fallbacks"] == []


def test_training_options_are_checked():
    with pytest.raises(ValueError, match="amp must be 'bf16' or 'fp16'"):
        genesis.compile(lambda: None, amp="int8")
    with pytest.raises(ValueError, match="clip_grad_norm must be a positive number"):
        genesis.compile(lambda: None, clip_grad_norm=0)


def test_a_step_with_dropout_matches_eager_seed_for_seed():
    def dropout_mlp():
        return nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.Dropout(0.3), nn.Linear(32, 3))

    eager, fused = Setup(dropout_mlp), Setup(dropout_mlp)
    step = genesis.compile(lambda x, y: train_step(fused, x, y))
    for i, (x, y) in enumerate(random_batches(8, (16, 12))):
        x, y = genesis.tensor(x), genesis.tensor(y)
        genesis.manual_seed(100 + i)
        expected = train_step(eager, x, y).item()
        genesis.manual_seed(100 + i)
        assert step(x, y).item() == pytest.approx(expected, rel=1e-6)
    for a, b in zip(eager.model.parameters(), fused.model.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert step.stats["fallbacks"] == []


def test_optimizer_state_is_updated_in_its_own_buffer(tmp_path):
    setup = Setup(mlp)
    step = genesis.compile(lambda x, y: train_step(setup, x, y), dump_dir=tmp_path)
    batches = [(genesis.tensor(x), genesis.tensor(y)) for x, y in random_batches(3, (16, 12))]
    step(*batches[0])
    step(*batches[1])
    state = setup.optimizer.state[setup.model[0].weight]
    buffers = {key: value._data for key, value in state.items()}
    before = {key: value.copy() for key, value in buffers.items()}
    step(*batches[2])
    for key, value in state.items():
        assert value._data is buffers[key]  # the same buffer, as eager's in-place ops
        assert not np.array_equal(value._data, before[key])  # holding the new values
    programs = sorted(tmp_path.iterdir())
    assert "updated in place" in (programs[-1] / "program.py").read_text()


def test_a_training_step_on_the_triton_backend_matches_eager():
    # Triton kernels under the interpreter (fp32 math may differ from numpy's by an ulp)
    eager, fused = Setup(mlp), Setup(mlp)
    step = genesis.compile(lambda x, y: train_step(fused, x, y), backend="triton")
    for x, y in random_batches(5, (16, 12)):
        x, y = genesis.tensor(x), genesis.tensor(y)
        assert step(x, y).item() == pytest.approx(train_step(eager, x, y).item(), rel=1e-6)
    for a, b in zip(eager.model.parameters(), fused.model.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert step.stats["fallbacks"] == []


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_the_optimizer_update_of_every_parameter_fuses_into_few_kernels(optimizer):
    make = {
        "sgd": lambda p: genesis.optim.SGD(p, lr=0.1, momentum=0.9),
        "adam": lambda p: genesis.optim.Adam(p, lr=1e-3),
        "adamw": lambda p: genesis.optim.AdamW(p, lr=1e-3, weight_decay=0.1),
    }[optimizer]
    x, y = (genesis.tensor(a) for a in random_batches(1, (16, 12))[0])

    def kernels(clip, update):
        genesis.manual_seed(0)
        model = mlp()
        opt = make(model.parameters())

        def step(x, y):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            if clip:
                nn_utils.clip_grad_norm_(model.parameters(), 1.0)
            if update:
                opt.step()
            return loss

        compiled = genesis.compile(step, backend="numpy")
        for _ in range(2):
            compiled(x, y)
        return compiled.stats["kernels_per_call"]

    # six parameters: their whole update joins the kernel that finishes the gradient norm, after its loop
    # (the decays of AdamW's weights and of Adam's moments too, which wait for no gradient)
    assert kernels(clip=True, update=True) - kernels(clip=True, update=False) <= 1
    assert kernels(clip=False, update=True) - kernels(clip=False, update=False) <= 4


OPTIMIZERS = {
    "adamw": (lambda params: genesis.optim.AdamW(params, lr=1e-2), {"weight_decay": 0.3, "eps": 1e-3, "amsgrad": True}),
    "sgd": (lambda params: genesis.optim.SGD(params, lr=1e-2, momentum=0.9), {"dampening": 0.5, "momentum": 0.0}),
    "rmsprop": (
        lambda params: genesis.optim.RMSprop(params, lr=1e-3),
        {"alpha": 0.9, "momentum": 0.5, "centered": True},
    ),
    "adagrad": (lambda params: genesis.optim.Adagrad(params, lr=1e-2), {"lr_decay": 0.1, "weight_decay": 0.1}),
    "adadelta": (lambda params: genesis.optim.Adadelta(params), {"rho": 0.5, "maximize": True}),
    "adamax": (lambda params: genesis.optim.Adamax(params, lr=1e-2), {"eps": 1e-3, "weight_decay": 0.1}),
    "nadam": (
        lambda params: genesis.optim.NAdam(params, lr=1e-2),
        {"momentum_decay": 0.1, "weight_decay": 0.1, "decoupled_weight_decay": True},
    ),
    # from step 6 on (beta2 0.999) the rectified update: the switch is a select in the graph, no recompile
    "radam": (
        lambda params: genesis.optim.RAdam(params, lr=1e-2),
        {"eps": 1e-3, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
    ),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_changing_a_hyperparameter_the_step_bakes_in_recompiles_and_matches_eager(name):
    make_optimizer, changes = OPTIMIZERS[name]
    models, optimizers = [], []
    for _ in range(2):
        genesis.manual_seed(0)
        models.append(mlp())
        optimizers.append(make_optimizer(models[-1].parameters()))

    eager_step, compiled = plain_step(models[0], optimizers[0]), genesis.compile(plain_step(models[1], optimizers[1]))
    batches = random_batches(3 + len(changes), (16, 12))
    for number, (x, y) in enumerate(batches):
        if number >= 3:  # one change a step, in both optimizers
            key, value = list(changes.items())[number - 3]
            for optimizer in optimizers:
                optimizer.param_groups[0][key] = value
        x, y = genesis.tensor(x), genesis.tensor(y)
        eager_step(x, y)
        compiled(x, y)
        for a, b in zip(models[0].parameters(), models[1].parameters()):
            np.testing.assert_allclose(
                b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-7, err_msg=f"step {number}"
            )
    assert compiled.stats["fallbacks"] == []
    reasons = compiled.stats["recompile_reasons"]
    for key in changes:
        assert any(f"hyperparameter {key!r}" in reason for reason in reasons), (key, reasons)


def test_changing_a_grad_scaler_factor_recompiles_and_matches_eager():
    eager, fused = Setup(mlp, scaler=True), Setup(mlp, scaler=True)
    step = genesis.compile(lambda x, y: train_step(fused, x, y, genesis.float16))
    for number, (x, y) in enumerate(random_batches(9, (16, 12))):
        if number == 4:  # just after a growth: the tracker counts from 0 again
            for setup in (eager, fused):
                setup.scaler.set_growth_factor(4.0)
                setup.scaler.set_growth_interval(2)
        x, y = genesis.tensor(x), genesis.tensor(y)
        train_step(eager, x, y, genesis.float16)
        step(x, y)
        assert fused.scaler.get_scale() == eager.scaler.get_scale(), number
    assert eager.scaler.get_scale() == 2.0**15  # grown x2 at step 3, then x4 at steps 5 and 7
    assert any("GradScaler growth_factor" in reason for reason in step.stats["recompile_reasons"])


@pytest.mark.parametrize("change", ["add_param_group", "replace_state"])
def test_a_param_group_added_or_state_replaced_after_compiling_is_traced_anew(change):
    def setup():
        genesis.manual_seed(0)
        body, head = nn.Linear(12, 8), nn.Linear(8, 3)
        optimizer = genesis.optim.Adam(body.parameters(), lr=1e-2)
        return head, optimizer, plain_step(lambda x: head(body(x).relu()), optimizer)

    (eager_head, eager_optimizer, eager_step), (head, optimizer, step) = setup(), setup()
    compiled = genesis.compile(step)
    for number, (x, y) in enumerate(random_batches(6, (16, 12))):
        if number == 3:
            for h, o in ((eager_head, eager_optimizer), (head, optimizer)):
                if change == "add_param_group":  # unfreezing a layer in the middle of training
                    o.add_param_group({"params": h.parameters()})
                else:
                    state = next(iter(o.state.values()))
                    state["exp_avg"] = genesis.zeros_like(state["exp_avg"])
        x, y = genesis.tensor(x), genesis.tensor(y)
        eager_step(x, y)
        compiled(x, y)
        for a, b in zip(eager_head.parameters(), head.parameters()):
            np.testing.assert_allclose(
                b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-7, err_msg=f"step {number}"
            )
        for a, b in zip(eager_optimizer.state.values(), optimizer.state.values()):
            np.testing.assert_allclose(
                b["exp_avg"].numpy(), a["exp_avg"].numpy(), rtol=1e-5, atol=1e-7, err_msg=f"step {number}"
            )
    assert any("Adam's parameters and state tensors changed" in r for r in compiled.stats["recompile_reasons"])
