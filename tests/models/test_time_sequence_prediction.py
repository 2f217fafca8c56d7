"""PyTorch's time-sequence-prediction example (pytorch/examples) on genesis, against PyTorch.

The model: two stacked LSTMCells of 51 units and a Linear read out, run one time
step at a time over sine waves, then fed its own output to extrapolate `future`
steps; MSELoss, trained in float64 by LBFGS (lr=0.8) with a closure. One
definition below builds it on either library. Genesis starts from PyTorch's
initial weights (copied through the state dicts, whose layouts must match), and
both run the same LBFGS steps on the same data: every loss the closure sees,
the parameters and the extrapolation must agree.

The two sides differ only in rounding (BLAS sums in another order, numpy's tanh
and exp against PyTorch's), about 1e-16 relative per operation. LBFGS amplifies
it, since every iteration builds on the history of the earlier ones, and more so
where the problem is ill-conditioned (two training waves instead of three: 1e-9
after two steps). On the data here the losses agree to about 3e-12 relative and
the predictions to 2e-11; the tolerances leave a margin of a few hundred and
stay far below what any real difference in the model would cause.

Compiled: `genesis.compile` of the closure's forward and backward (LBFGS's own
step branches on host values at every iteration, so it runs eagerly around it)
must give eager's loss and gradients, and drive LBFGS along eager's path.
"""

import warnings

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

import genesis
import genesis.nn
import genesis.optim

HIDDEN = 51
PERIOD = 20  # the example's data are sin(t / 20)
TEST_WAVES = 2  # the first waves are held out for the extrapolation, the rest train
LBFGS_STEPS = 2
FUTURE = 30
# the compiler unrolls the time loop, so its tests take shorter waves (count, length)
COMPILED_WAVES = (5, 8)

# rounding amplified by LBFGS (see the module docstring)
LOSS_RTOL = 1e-9
WEIGHT_ATOL = 1e-8
PREDICTION_ATOL = 1e-8


@pytest.fixture(autouse=True)
def _one_thread():
    """The products are 51 wide: BLAS and PyTorch threads only add their wake-ups, which on a busy
    machine cost more than the work (two LBFGS steps: 17 s against 3 s eagerly, torch 11 s against 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(threads)


def sine_waves(count, length):
    """The example's data, fewer and shorter: sin(t / PERIOD) over `length` steps, each wave shifted."""
    rng = np.random.RandomState(2)
    steps = np.arange(length) + rng.randint(-4 * PERIOD, 4 * PERIOD, count).reshape(count, 1)
    return np.sin(steps / PERIOD)


def build_model(lib):
    """The example's `Sequence` model on `lib` (genesis or torch), written once for both."""

    class SineForecaster(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm1 = lib.nn.LSTMCell(1, HIDDEN)
            self.lstm2 = lib.nn.LSTMCell(HIDDEN, HIDDEN)
            self.linear = lib.nn.Linear(HIDDEN, 1)

        def step(self, value, state):
            h1, c1, h2, c2 = state
            h1, c1 = self.lstm1(value, (h1, c1))
            h2, c2 = self.lstm2(h1, (h2, c2))
            return self.linear(h2), (h1, c1, h2, c2)

        def forward(self, waves, future=0):
            state = tuple(lib.zeros(waves.size(0), HIDDEN, dtype=lib.double) for _ in range(4))
            outputs = []
            for value in waves.split(1, dim=1):  # teacher forcing: each step reads the true value
                output, state = self.step(value, state)
                outputs.append(output)
            for _ in range(future):  # then the model feeds on its own predictions
                output, state = self.step(output, state)
                outputs.append(output)
            return lib.cat(outputs, dim=1)

    return SineForecaster().double()


def model_pair():
    """A torch model from a fixed seed, and a genesis model holding the same initial weights."""
    torch.manual_seed(0)
    torch_model = build_model(torch)
    genesis_model = build_model(genesis)
    torch_state = torch_model.state_dict()
    assert list(genesis_model.state_dict()) == list(torch_state)  # PyTorch's names, in PyTorch's order
    genesis_model.load_state_dict({name: genesis.tensor(value.numpy()) for name, value in torch_state.items()})
    return genesis_model, torch_model


def split_data(lib, waves):
    """(train input, train target, test input, test target): each target is its input one step on."""
    data = [waves[TEST_WAVES:, :-1], waves[TEST_WAVES:, 1:], waves[:TEST_WAVES, :-1], waves[:TEST_WAVES, 1:]]
    return [lib.tensor(part) for part in data]


def forward_backward_of(model, lib, inputs, targets):
    """The closure's work: gradients of the training loss from zero, and the loss."""
    criterion = lib.nn.MSELoss()

    def forward_backward():
        model.zero_grad()  # the optimizer's zero_grad: it holds every parameter of the model
        loss = criterion(model(inputs), targets)
        loss.backward()
        return loss

    return forward_backward


def train(lib, model, waves, compile_closure=False):
    """Run the example's training loop; return each step's closure losses, the test predictions, the
    test loss and the function the closure calls."""
    inputs, targets, test_inputs, test_targets = split_data(lib, waves)
    optimizer = lib.optim.LBFGS(model.parameters(), lr=0.8)
    forward_backward = forward_backward_of(model, lib, inputs, targets)
    if compile_closure:
        forward_backward = genesis.compile(forward_backward)
    losses_per_step = []
    for _ in range(LBFGS_STEPS):
        losses = []

        def closure():
            loss = forward_backward()
            losses.append(loss.item())  # outside the compiled part, as the example's print
            return loss

        optimizer.step(closure)
        losses_per_step.append(losses)
    with lib.no_grad():
        predictions = model(test_inputs, future=FUTURE)
        test_loss = lib.nn.functional.mse_loss(predictions[:, :-FUTURE], test_targets).item()
    return losses_per_step, predictions.numpy(), test_loss, forward_backward


def weights(model):
    return {name: value.detach().numpy() for name, value in model.state_dict().items()}


def assert_same_run(actual, expected):
    (losses, predictions, test_loss), (expected_losses, expected_predictions, expected_test_loss) = actual, expected
    assert [len(step) for step in losses] == [len(step) for step in expected_losses]  # the same evaluations
    for step, (got, want) in enumerate(zip(losses, expected_losses)):
        np.testing.assert_allclose(got, want, rtol=LOSS_RTOL, err_msg=f"closure losses of LBFGS step {step}")
    np.testing.assert_allclose(test_loss, expected_test_loss, rtol=LOSS_RTOL, err_msg="test loss")
    np.testing.assert_allclose(predictions, expected_predictions, rtol=0, atol=PREDICTION_ATOL)


def test_lbfgs_training_matches_pytorch():
    waves = sine_waves(count=5, length=16)
    genesis_model, torch_model = model_pair()
    genesis_run = train(genesis, genesis_model, waves)
    torch_run = train(torch, torch_model, waves)
    assert_same_run(genesis_run[:3], torch_run[:3])
    assert genesis_run[2] < genesis_run[0][0][0]  # it learned: the held-out loss fell below the first loss
    assert genesis_run[1].shape == (TEST_WAVES, waves.shape[1] - 1 + FUTURE)
    torch_weights = weights(torch_model)
    for name, value in weights(genesis_model).items():
        np.testing.assert_allclose(value, torch_weights[name], rtol=0, atol=WEIGHT_ATOL, err_msg=name)


def test_compiled_forward_backward_matches_eager():
    """One closure evaluation: the loss and every parameter's gradient, compiled against eager."""
    model, _ = model_pair()
    inputs, targets, _, _ = split_data(genesis, sine_waves(*COMPILED_WAVES))
    forward_backward = forward_backward_of(model, genesis, inputs, targets)
    eager_loss = forward_backward().item()
    eager_grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
    compiled = genesis.compile(forward_backward)
    for _ in range(3):  # the first call, the confirming trace, then the program alone
        np.testing.assert_allclose(compiled().item(), eager_loss, rtol=1e-12)
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), eager_grads[name], rtol=1e-10, atol=1e-14, err_msg=name)
    assert compiled.stats["compiles"] == 1 and not compiled.stats["fallbacks"]
    assert compiled.stats["eager_calls"] == 0


def test_compiled_extrapolation_matches_eager():
    """The prediction without gradients: the time loop and the `future` steps fed on the model's own
    output, unrolled into one program."""
    model, _ = model_pair()
    _, _, test_inputs, _ = split_data(genesis, sine_waves(*COMPILED_WAVES))
    compiled = genesis.compile(model)
    with genesis.no_grad():
        expected = model(test_inputs, future=10).numpy()
        for _ in range(3):
            np.testing.assert_allclose(compiled(test_inputs, future=10).numpy(), expected, rtol=1e-12, atol=1e-14)
    assert compiled.stats["compiles"] == 1 and not compiled.stats["fallbacks"]


def test_lbfgs_with_a_compiled_closure_follows_eager():
    """LBFGS steps eagerly; the closure it calls at every iteration runs one compiled program."""
    waves = sine_waves(*COMPILED_WAVES)
    eager_model, _ = model_pair()
    expected = train(genesis, eager_model, waves)
    model, _ = model_pair()
    *run, compiled = train(genesis, model, waves, compile_closure=True)
    assert_same_run(run, expected[:3])
    stats = compiled.stats
    assert stats["compiles"] == 1 and stats["recompiles"] == 0 and not stats["fallbacks"]
    assert stats["calls"] == sum(len(step) for step in run[0]) and stats["eager_calls"] == 0


def test_the_examples_closure_compiled_falls_back_at_its_print():
    """The example's closure prints loss.item() before backward: compiled, that host read breaks the
    graph, with a warning naming it, and the closure runs eagerly with eager's results."""
    waves = sine_waves(*COMPILED_WAVES)
    inputs, targets, _, _ = split_data(genesis, waves)
    results = []
    for compiled in (False, True):
        model, _ = model_pair()
        optimizer = genesis.optim.LBFGS(model.parameters(), lr=0.8)
        losses = []

        def closure():
            optimizer.zero_grad()
            loss = genesis.nn.functional.mse_loss(model(inputs), targets)
            losses.append(loss.item())
            loss.backward()
            return loss

        if compiled:
            closure = genesis.compile(closure)
            with pytest.warns(UserWarning, match=r"runs eagerly: a host read .*\(\.item\(\)\)"):
                optimizer.step(closure)
            assert closure.stats["fallbacks"] and closure.stats["compiles"] == 0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                optimizer.step(closure)
        results.append((losses, weights(model)))
    (eager_losses, eager_weights), (losses, compiled_weights) = results
    assert losses == eager_losses  # the same eager code ran: bit for bit
    for name, value in compiled_weights.items():
        np.testing.assert_array_equal(value, eager_weights[name], err_msg=name)
