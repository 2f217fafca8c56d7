"""A compiled function reads and writes the tensors of each call, and traces anew whenever the
Python state its trace read has changed: every result equals eager's."""

import numpy as np
import pytest

import genesis
from genesis import nn

BACKENDS = ["c", "numpy", "eager"]


def values(t):
    return None if t is None else t.detach().numpy().copy()


def assert_same(got, expected, rtol=1e-6, atol=1e-6):
    if expected is None:
        assert got is None
        return
    np.testing.assert_allclose(values(got), values(expected), rtol=rtol, atol=atol)


# ---- every call binds its own tensors -------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_in_place_write_goes_to_the_tensor_of_each_call(backend):
    f = genesis.compile(lambda x: x.add_(1), backend=backend)
    a, b, c = genesis.zeros(3), genesis.zeros(3), genesis.zeros(3)
    for x in (a, b, c, b):
        f(x)
    np.testing.assert_array_equal(a.numpy(), [1, 1, 1])
    np.testing.assert_array_equal(b.numpy(), [2, 2, 2])
    np.testing.assert_array_equal(c.numpy(), [1, 1, 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_of_a_backward_inside_the_function_go_to_the_leaves_of_each_call(backend):
    def step(x):
        loss = (x * x).sum()
        loss.backward()
        return loss

    f = genesis.compile(step, backend=backend)
    a = genesis.ones(3, requires_grad=True)
    b = genesis.full((3,), 2.0, requires_grad=True)
    f(a)
    f(b)
    f(b)  # b has a gradient now: the second call's trace reads and accumulates into it
    f(a)
    np.testing.assert_array_equal(a.grad.numpy(), [4, 4, 4])
    np.testing.assert_array_equal(b.grad.numpy(), [8, 8, 8])


def test_a_function_that_reads_an_arguments_gradient_sees_the_one_of_its_call():
    def f(x):
        (x * 3.0).sum().backward()
        return x.grad * 2.0

    compiled = genesis.compile(f)
    for make in (lambda: genesis.ones(2, requires_grad=True),):
        eager_x, fused_x = make(), make()
        for _ in range(3):
            assert_same(compiled(fused_x), f(eager_x))
            assert_same(fused_x.grad, eager_x.grad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_tensor_passed_twice_is_one_value(backend):
    def f(x, y):
        x.mul_(2.0)
        return y + 1.0

    compiled = genesis.compile(f, backend=backend)
    a, b = genesis.arange(4.0), genesis.arange(4.0)
    assert_same(compiled(a, a), f(b, b))
    assert_same(a, b)
    c, d = genesis.arange(4.0), genesis.arange(4.0)  # then two different tensors: a program of its own
    assert_same(compiled(c, genesis.ones(4)), genesis.ones(4) + 1.0)
    assert_same(c, d * 2.0)


def test_arguments_that_share_memory_with_what_the_function_writes_run_eagerly():
    def f(x, y):
        x.add_(1.0)
        return y * 2.0

    compiled = genesis.compile(f)
    base, reference = genesis.zeros(2, 3), genesis.zeros(2, 3)
    compiled(base, genesis.zeros(3))  # separate tensors: compiled
    assert compiled.stats["eager_calls"] == 0
    got = compiled(base, base[0])
    expected = (f(reference, genesis.zeros(3)), f(reference, reference[0]))[1]
    assert_same(got, expected)
    assert_same(base, reference)
    assert compiled.stats["eager_calls"] == 1


def test_an_argument_that_is_a_tensor_the_function_also_reads_as_a_global():
    w = genesis.ones(3)

    def f(x):
        x.mul_(3.0)
        return w + 1.0

    compiled = genesis.compile(f)
    compiled(genesis.ones(3))
    np.testing.assert_array_equal(compiled(w).numpy(), [4, 4, 4])  # eager writes w first, then reads it
    np.testing.assert_array_equal(w.numpy(), [3, 3, 3])


# ---- guards on the Python state a trace read ------------------------------------------------------


def test_a_closure_over_a_model_follows_its_train_and_eval_modes():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    compiled = genesis.compile(lambda x: model(x))
    x = genesis.randn(8, 4)
    with genesis.no_grad():
        compiled(x)
        model.eval()
        assert_same(compiled(x), model(x))
        model.train()
        compiled(x)
        model.eval()
        compiled(x)
    assert compiled.stats["compiles"] == 2  # one program per mode, both kept


def test_a_parameter_replaced_by_a_new_object_is_read_from_the_module():
    model = nn.Linear(4, 3)
    compiled = genesis.compile(model)
    x = genesis.randn(2, 4)
    compiled(x)
    model.weight = nn.Parameter(genesis.randn(3, 4))
    assert_same(compiled(x), model(x))
    assert compiled.stats["recompile_reasons"] == ["Linear: parameters replaced or added"]


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale, self.shift = 2.0, True
        self.mask = None

    def forward(self, x):
        if self.mask is None:  # made on the first call and kept, as a causal mask is
            self.mask = genesis.ones(x.shape[-1], x.shape[-1]).tril()
        y = (x @ self.mask) * self.scale
        return y + 1.0 if self.shift else y


def test_python_scalars_and_flags_on_a_module_are_guarded():
    model = Scaled()
    compiled = genesis.compile(model)
    x = genesis.randn(3, 3)
    for change in (None, ("scale", 3.0), ("shift", False), ("scale", 0.5)):
        if change is not None:
            setattr(model, *change)
        assert_same(compiled(x), model(x))


def test_a_tensor_made_inside_the_trace_and_stored_on_a_module_is_a_real_tensor():
    model = Scaled()
    compiled = genesis.compile(model)
    x = genesis.randn(3, 3)
    compiled(x)
    assert isinstance(model.mask.numpy(), np.ndarray)  # values, not a traced stand-in
    np.testing.assert_array_equal(model.mask.numpy(), np.tril(np.ones((3, 3), np.float32)))
    assert_same(compiled(x), Scaled()(x))
    assert_same(compiled(x), Scaled()(x))


def test_storing_a_tensor_that_requires_grad_on_a_module_runs_eagerly():
    class Keeps(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 3)

        def forward(self, x):
            self.last = self.linear(x)
            return self.last.sum()

    model = Keeps()
    compiled = genesis.compile(model)
    with pytest.warns(UserWarning, match="storing a tensor that requires grad"):
        compiled(genesis.randn(2, 3)).backward()
    assert model.last.grad_fn is not None
    assert model.linear.weight.grad is not None


def test_python_values_a_function_closes_over_or_reads_as_globals_are_guarded():
    factor = 2.0
    compiled = genesis.compile(lambda x: x * factor + OFFSET)
    x = genesis.randn(3)
    assert_same(compiled(x), x * 2.0 + OFFSET)
    factor = 5.0  # noqa: F841  (read by the lambda through its closure)
    assert_same(compiled(x), x * 5.0 + OFFSET)
    globals()["OFFSET"] = 7.0
    try:
        assert_same(compiled(x), x * 5.0 + 7.0)
    finally:
        globals()["OFFSET"] = 1.0


OFFSET = 1.0


def test_a_counter_the_function_bumps_is_counted_once_per_call():
    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return x * self.calls

    model = Counting()
    compiled = genesis.compile(model)
    x = genesis.ones(2)
    got = [compiled(x).numpy()[0] for _ in range(4)]
    assert got == [1, 2, 3, 4]
    assert model.calls == 4


def test_a_module_method_compiled_guards_its_module():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.0), nn.BatchNorm1d(3))
    compiled = genesis.compile(model.forward)
    x = genesis.randn(4, 3)
    with genesis.no_grad():
        compiled(x)
        compiled(x)  # the second call traces again to confirm the first trace: past that, only guards
        model.eval()
        assert_same(compiled(x), model(x))


# ---- results and gradients as eager leaves them ------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_returning_what_it_ran_backward_through_behaves_as_in_eager(backend):
    def run(compiled):
        genesis.manual_seed(0)
        model = nn.Linear(3, 2)

        def step(x):
            out = model(x)
            loss = (out**2).sum()
            loss.backward()
            return loss, out

        f = genesis.compile(step, backend=backend) if compiled else step
        for _ in range(3):
            loss, out = f(genesis.randn(4, 3))
        errors = []
        for tensor in (loss, out.sum()):
            with pytest.raises(RuntimeError, match="backward through the graph a second time") as error:
                tensor.backward()
            errors.append(str(error.value))
        return loss, out, model.weight.grad, errors

    (loss, out, grad, errors), (e_loss, e_out, e_grad, e_errors) = run(True), run(False)
    assert (loss.requires_grad, out.requires_grad) == (e_loss.requires_grad, e_out.requires_grad) == (True, True)
    assert errors == e_errors
    assert_same(loss, e_loss, rtol=1e-5)
    assert_same(grad, e_grad, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_a_compiled_step_leaves_are_plain_leaves(backend):
    model = nn.Linear(3, 2)
    optimizer = genesis.optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        optimizer.zero_grad()
        loss = (model(x) ** 2).sum()
        loss.backward()
        optimizer.step()
        return loss

    compiled = genesis.compile(step, backend=backend)
    for _ in range(3):
        compiled(genesis.randn(4, 3))
    for p in model.parameters():
        assert not p.grad.requires_grad and p.grad.grad_fn is None


HELD = genesis.tensor([1.0, 2.0])


def test_a_tensor_rebound_in_a_global_a_cell_a_container_or_an_attribute_is_read_anew():
    """A compiled function that reads a tensor from outside its arguments follows the name, not the
    object it found there first: rebinding it retraces, as eager would read the new tensor."""
    global HELD
    box = {"x": genesis.tensor([1.0, 2.0])}
    items = [genesis.tensor([1.0, 2.0])]
    cell = genesis.tensor([1.0, 2.0])

    class Trainer:
        def __init__(self):
            self.weight = genesis.tensor([1.0, 2.0])
            self.last = None

        def step(self, x):
            self.last = (x * self.weight).sum()  # a tensor the trace only stores: rebinding it is fine
            return self.last

    def reads_all(x):
        return x * HELD + box["x"] + items[0] * cell

    x = genesis.tensor([1.0, -1.0])
    compiled = genesis.compile(reads_all)
    assert_same(compiled(x), reads_all(x))
    HELD = genesis.tensor([5.0, 6.0])
    assert_same(compiled(x), reads_all(x))
    box["x"] = genesis.tensor([7.0, 8.0])
    assert_same(compiled(x), reads_all(x))
    items[0] = genesis.tensor([3.0, 3.0])
    assert_same(compiled(x), reads_all(x))
    cell = genesis.tensor([0.5, 0.25])
    assert_same(compiled(x), reads_all(x))
    assert [reason.split(":")[0] for reason in compiled.stats["recompile_reasons"]] == [
        "the global 'HELD' that test_a_tensor_rebound_in_a_global_a_cell_a_container_or_an_attribute_is_read_anew"
        ".<locals>.reads_all reads",
        "the tensor at ['x'] of a dict",
        "the tensor at [0] of a list it reads",
        "'cell', which test_a_tensor_rebound_in_a_global_a_cell_a_container_or_an_attribute_is_read_anew"
        ".<locals>.reads_all closes over",
    ]
    HELD = genesis.tensor([1.0, 2.0])

    trainer = Trainer()
    step = genesis.compile(trainer.step)
    for _ in range(3):
        assert_same(step(x), trainer.step(x))
    assert step.stats["recompiles"] == 0
    trainer.weight = genesis.tensor([3.0, 3.0])
    assert_same(step(x), Trainer.step(trainer, x))
    assert step.stats["recompile_reasons"][-1] == "the tensor Trainer.weight: now another object"
