"""The CUDA device: on the simulated device (GENESIS_FAKE_CUDA=1, runtime/cuda.py) wherever no GPU
runtime is there, which is every machine for now (tests/conftest.py turns it on for tests marked
`gpu`).

Every op eagerly on the device must give the CPU's values (Triton kernels under the interpreter
against numpy's); a training step must give the CPU's parameters; device memory must refuse
implicit host reads, and the copies each way are counted so that a test can say how many a step
makes.
"""

import numpy as np
import pytest
import torch

import genesis
import genesis.nn.functional as F
from genesis import nn
from genesis.compiler.trace import Tracer, tracing
from genesis.runtime import cuda as cuda_runtime

pytestmark = pytest.mark.gpu


def values(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_the_simulated_device_answers_as_torch_cuda():
    assert genesis.cuda.is_available() and genesis.cuda.device_count() == 1
    assert genesis.device("cuda") is genesis.device("cuda:0")
    assert genesis.accelerator.current_accelerator() == genesis.device("cuda:0")
    with pytest.raises(RuntimeError, match=r"'cuda:1': there is no such CUDA device \(1 device"):
        genesis.device("cuda:1")


def test_a_tensor_moves_to_the_device_and_back_by_counted_copies():
    x = values((3, 4), 1)
    genesis.cuda.reset_transfer_stats()
    d = genesis.tensor(x).to("cuda")
    assert d.device == genesis.device("cuda:0") and d.is_cuda and not d.is_cpu
    assert genesis.cuda.transfer_stats()["host_to_device"] == 1
    assert genesis.cuda.transfer_stats()["host_to_device_bytes"] == x.nbytes
    back = d.cpu()
    np.testing.assert_array_equal(back.numpy(), x)
    stats = genesis.cuda.transfer_stats()
    assert (stats["device_to_host"], stats["device_to_host_bytes"], stats["synchronizations"]) == (1, x.nbytes, 1)
    assert d.to("cuda") is d and back.cpu() is back  # already there: no copy
    assert genesis.tensor(x, device="cuda").device.type == "cuda"
    assert genesis.zeros(2, 3, device="cuda").is_cuda and genesis.ones_like(d).is_cuda
    assert genesis.tensor(x).cuda().is_cuda and genesis.tensor(x).cuda(0).is_cuda


def test_device_memory_refuses_implicit_host_reads_and_explicit_ones_copy():
    d = genesis.tensor(values((2, 3), 2)).cuda()
    with pytest.raises(cuda_runtime.HostReadError, match=r"float32 buffer of shape \[2, 3\] in cuda memory"):
        np.asarray(d._data)  # what a CPU kernel handed device memory would do
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu()"):
        d.numpy()
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        np.asarray(d)
    genesis.cuda.reset_transfer_stats()
    assert d.sum().item() == pytest.approx(float(values((2, 3), 2).sum()), rel=1e-6)
    assert bool(d[0, 0] == d[0, 0])
    stats = genesis.cuda.transfer_stats()
    assert stats["device_to_host"] == 2 and stats["synchronizations"] == 2


def test_ops_across_devices_are_refused_naming_both_but_a_0d_cpu_tensor_goes_along():
    d = genesis.tensor(values((2, 3), 3)).cuda()
    c = genesis.tensor(values((2, 3), 4))
    with pytest.raises(RuntimeError, match=r"add: expected all tensors to be on the same device.*cuda:0 and cpu"):
        d + c
    with pytest.raises(RuntimeError, match=r"mul: expected all tensors to be on the same device.*cpu and cuda:0"):
        c * d
    scaled = d * genesis.tensor(2.0)  # as PyTorch: a CPU scalar tensor joins a CUDA op
    assert scaled.is_cuda
    np.testing.assert_array_equal(scaled.cpu().numpy(), values((2, 3), 3) * 2)


UNARY = ["exp", "log", "tanh", "sigmoid", "relu", "abs", "neg", "sqrt", "sin", "floor", "reciprocal"]


@pytest.mark.parametrize("name", UNARY)
def test_unary_ops_on_the_device_give_the_cpus_values(name):
    x = np.abs(values((5, 7), 5)) + 0.1
    cpu = getattr(genesis, name)(genesis.tensor(x))
    device = getattr(genesis, name)(genesis.tensor(x).cuda())
    assert device.is_cuda and device.dtype is cpu.dtype
    np.testing.assert_allclose(device.cpu().numpy(), cpu.numpy(), rtol=1e-6, atol=1e-7)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: genesis.abs(a) ** b,
    "maximum": genesis.maximum,
    "where": lambda a, b: genesis.where(a > b, a, b * 2.0),
    "broadcast": lambda a, b: a * b[:1] + 3.0,
    "lt": lambda a, b: a < b,
}


@pytest.mark.parametrize("name", BINARY)
def test_binary_ops_on_the_device_give_the_cpus_values(name):
    a, b = values((4, 6), 6), values((4, 6), 7)
    cpu = BINARY[name](genesis.tensor(a), genesis.tensor(b))
    device = BINARY[name](genesis.tensor(a).cuda(), genesis.tensor(b).cuda())
    assert device.is_cuda and device.dtype is cpu.dtype
    np.testing.assert_allclose(device.cpu().numpy(), cpu.numpy(), rtol=1e-6, atol=1e-7)


SHAPED = {
    "sum over rows": lambda x: x.sum(dim=-1),
    "sum of all": lambda x: x.sum(),
    "mean keepdim": lambda x: x.mean(dim=1, keepdim=True),
    "amax": lambda x: x.amax(dim=-1),
    "argmax": lambda x: x.argmax(dim=-1),
    "softmax": lambda x: F.softmax(x, dim=-1),
    "log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "layer_norm": lambda x: F.layer_norm(x, (x.shape[-1],)),
    "matmul": lambda x: x @ x.transpose(-1, -2),
    "reshape and permute": lambda x: x.reshape(2, 3, 8).permute(2, 0, 1).contiguous(),
    "slice": lambda x: x[1:, ::2] * 2.0,
    "expand": lambda x: x[:, :1].expand(6, 8) + x,
    "cat": lambda x: genesis.cat([x, x * 2.0], dim=1),
    "gather": lambda x: x.gather(1, genesis.tensor([[0], [3], [7], [1], [2], [5]], device=x.device)),
    "cast": lambda x: (x * 100).to(genesis.int32),
}


@pytest.mark.parametrize("name", SHAPED)
def test_reductions_views_and_products_on_the_device_give_the_cpus_values(name):
    x = values((6, 8), 8)
    cpu = SHAPED[name](genesis.tensor(x))
    device = SHAPED[name](genesis.tensor(x).cuda())
    assert device.is_cuda and device.dtype is cpu.dtype and device.shape == cpu.shape
    np.testing.assert_allclose(device.cpu().numpy(), cpu.numpy(), rtol=1e-5, atol=1e-6)


def test_a_view_on_the_device_shares_its_buffer():
    d = genesis.zeros(4, 4, device="cuda")
    row = d[1]
    row.add_(1.0)  # in place through the view
    np.testing.assert_array_equal(d.cpu().numpy()[1], np.ones(4))
    assert genesis.cuda.memory_allocated() >= 64


def test_gradients_on_the_device_are_the_cpus():
    x, w = values((5, 8), 9), values((8, 3), 10)

    def grads(device):
        xt = genesis.tensor(x, device=device, requires_grad=True)
        wt = genesis.tensor(w, device=device, requires_grad=True)
        (F.gelu(xt @ wt).square().sum() + xt.amax(dim=1).sum()).backward()
        assert xt.grad.device == xt.device and wt.grad.device == wt.device
        return xt.grad.cpu().numpy(), wt.grad.cpu().numpy()

    for got, expected in zip(grads("cuda"), grads("cpu")):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_gradient_flows_back_across_a_device_move():
    x = genesis.tensor(values((3, 4), 11), requires_grad=True)  # on the CPU
    y = (x.cuda() * 3.0).sum()
    y.backward()
    assert x.grad.device.type == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 3.0, np.float32))


def mlp_steps(device, steps=3):
    genesis.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).to(device)
    optimizer = genesis.optim.Adam(model.parameters(), lr=1e-2)
    x = genesis.tensor(values((5, 8), 12)).to(device)
    y = genesis.tensor(np.random.default_rng(13).integers(0, 4, 5)).to(device)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return model, losses


def test_an_eager_training_step_on_the_device_gives_the_cpus_parameters():
    model, losses = mlp_steps("cuda")
    assert all(p.is_cuda for p in model.parameters())
    cpu_model, cpu_losses = mlp_steps("cpu")
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-6)
    for got, expected in zip(model.parameters(), cpu_model.parameters()):
        np.testing.assert_allclose(got.detach().cpu().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    # and PyTorch's first loss (the same initial parameters, moved to the CPU)
    reference = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    genesis.manual_seed(0)
    start = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    reference.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in start.state_dict().items()})
    expected = torch.nn.functional.cross_entropy(
        reference(torch.from_numpy(values((5, 8), 12))), torch.from_numpy(np.random.default_rng(13).integers(0, 4, 5))
    )
    assert losses[0] == pytest.approx(expected.item(), rel=1e-6)


def test_a_checkpoint_saved_from_the_device_loads_on_the_cpu_or_the_device(tmp_path):
    model, _ = mlp_steps("cuda", steps=1)
    path = tmp_path / "model.safetensors"
    genesis.save(model.state_dict(), path)
    on_cpu = genesis.load(path)
    on_device = genesis.load(path, map_location="cuda")
    for name, param in model.state_dict().items():
        assert on_cpu[name].device.type == "cpu" and on_device[name].is_cuda
        np.testing.assert_array_equal(on_cpu[name].numpy(), param.cpu().numpy())
        np.testing.assert_array_equal(on_device[name].cpu().numpy(), param.cpu().numpy())
    fresh = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).cuda()
    fresh.load_state_dict(on_cpu)  # copied across devices into the device's parameters
    assert all(p.is_cuda for p in fresh.parameters())
    for got, expected in zip(fresh.parameters(), model.parameters()):
        np.testing.assert_array_equal(got.detach().cpu().numpy(), expected.detach().cpu().numpy())


def test_device_memory_is_counted_while_tensors_hold_it():
    genesis.cuda.reset_peak_memory_stats()
    before = genesis.cuda.memory_allocated()
    d = genesis.zeros(1024, device="cuda")
    assert genesis.cuda.memory_allocated() == before + 4096
    del d
    assert genesis.cuda.memory_allocated() == before
    assert genesis.cuda.max_memory_allocated() >= before + 4096


def test_random_numbers_on_the_device_are_the_cpus_for_the_same_seed():
    genesis.cuda.manual_seed(5)
    device = genesis.rand(3, 4, device="cuda")
    genesis.manual_seed(5)
    cpu = genesis.rand(3, 4)
    assert device.is_cuda
    np.testing.assert_array_equal(device.cpu().numpy(), cpu.numpy())


def compiled_mlp(device):
    genesis.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).to(device)
    optimizer = genesis.optim.Adam(model.parameters(), lr=1e-2)

    @genesis.compile
    def step(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    return model, step


def test_a_compiled_training_step_on_the_device_gives_eagers_parameters_and_copies_nothing():
    model, step = compiled_mlp("cuda")
    x = genesis.tensor(values((5, 8), 12)).cuda()
    y = genesis.tensor(np.random.default_rng(13).integers(0, 4, 5)).cuda()
    losses = [step(x, y) for _ in range(2)]  # the compile, and its confirming trace
    genesis.cuda.reset_transfer_stats()
    losses.append(step(x, y))
    stats = genesis.cuda.transfer_stats()
    assert (stats["host_to_device"], stats["device_to_host"], stats["synchronizations"]) == (0, 0, 0)
    assert step.stats["compiles"] == 1 and all(loss.is_cuda for loss in losses)
    assert all(p.is_cuda for p in model.parameters())
    eager_model, eager_losses = mlp_steps("cpu")
    np.testing.assert_allclose([loss.item() for loss in losses], eager_losses, rtol=1e-6)
    for got, expected in zip(model.parameters(), eager_model.parameters()):
        np.testing.assert_allclose(got.detach().cpu().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_a_compiled_elementwise_chain_runs_as_triton_kernels_on_the_device():
    a, b = values((6, 32), 14), values((6, 32), 15)
    chain = genesis.compile(lambda x, y: F.relu(x * y + 1.0) * 0.5 - x)
    expected = chain(genesis.tensor(a), genesis.tensor(b))  # compiled for the CPU
    x, y = genesis.tensor(a).cuda(), genesis.tensor(b).cuda()
    genesis.cuda.reset_transfer_stats()
    got = chain(x, y)  # a program of its own, for the device's tensors
    assert got.is_cuda and chain.stats["compiles"] == 2
    assert genesis.cuda.transfer_stats()["host_round_trips"] == 0
    np.testing.assert_allclose(got.cpu().numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)


def test_work_without_a_device_kernel_counts_as_a_host_round_trip():
    x = genesis.tensor(values((4, 9), 16)).cuda()
    genesis.cuda.reset_transfer_stats()
    x + x
    assert genesis.cuda.transfer_stats()["host_round_trips"] == 0
    ordered = genesis.sort(x, dim=-1).values  # a library call: the host's, on a GPU
    eager_trips = genesis.cuda.transfer_stats()["host_round_trips"]
    assert eager_trips >= 1
    np.testing.assert_array_equal(ordered.cpu().numpy(), np.sort(values((4, 9), 16), axis=-1))
    genesis.compile(lambda t: genesis.sort(t, dim=-1).values * 2.0)(x)
    assert genesis.cuda.transfer_stats()["host_round_trips"] > eager_trips


def amp_steps(device, compiled, dtype):
    genesis.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).to(device)
    optimizer = genesis.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = genesis.amp.GradScaler(device, init_scale=2.0**20)  # fp16 overflows at first: a skipped step
    x = genesis.tensor(values((5, 8), 12) * 100).to(device)
    y = genesis.tensor(np.random.default_rng(13).integers(0, 4, 5)).to(device)

    def step(x, y):
        optimizer.zero_grad()
        with genesis.amp.autocast(device_type=device, dtype=dtype):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        return loss

    step = genesis.compile(step) if compiled else step
    losses = []
    for _ in range(4):
        losses.append(step(x, y))
        if compiled:
            genesis.cuda.reset_transfer_stats()
    if compiled and device == "cuda":  # the last call: no copy, no sync, even for the finite check
        stats = genesis.cuda.transfer_stats()
        assert (stats["device_to_host"], stats["synchronizations"]) == (0, 0)
    return [loss.item() for loss in losses], [p.detach().cpu().numpy() for p in model.parameters()], scaler


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_amp_with_a_grad_scaler_on_the_device_gives_the_cpus_steps(compiled, dtype):
    dtype = getattr(genesis, dtype)
    losses, params, scaler = amp_steps("cuda", compiled, dtype)
    cpu_losses, cpu_params, cpu_scaler = amp_steps("cpu", False, dtype)
    assert scaler.get_scale() == cpu_scaler.get_scale()
    if dtype is genesis.float16:
        assert scaler.get_scale() < 2.0**20  # a step was skipped, on the device as on the CPU
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-6)
    for got, expected in zip(params, cpu_params):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_cuda_grad_scaler_without_a_cuda_device_disables_itself_as_pytorchs(monkeypatch):
    monkeypatch.delenv("GENESIS_FAKE_CUDA")
    with pytest.warns(UserWarning, match="no CUDA device is available; disabling it"):
        scaler = genesis.amp.GradScaler("cuda")
    loss = genesis.tensor(3.0, requires_grad=True)
    assert not scaler.is_enabled() and scaler.scale(loss) is loss


# what the program fuzzer found on the device (genesis.testing.fuzz --backends cuda-eager,cuda)
REGRESSIONS = {
    # a vjp's zeros made on the CPU (seed 76003: index_select's backward scatters into them)
    "index_select": (lambda x, y: x.index_select(0, genesis.tensor([2, 0, 2], device=x.device)), True),
    # masks made with arange on the CPU (76033: triu; 76272: causal attention)
    "triu": (lambda x, y: x.unsqueeze(1).triu(0), True),
    "causal attention": (lambda x, y: F.scaled_dot_product_attention(x, y, x, is_causal=True), True),
    # a host copy of a strided device tensor must be contiguous, as the op says (76030)
    "cpu of a transpose": (lambda x, y: (x.transpose(0, 1).cpu() * 2.0).to(x.device), False),
    # CPU-made index tensors for a device tensor (indexing with a list)
    "list index": (lambda x, y: x[[0, 2]] + y[[1, 1]], True),
    # a broadcast operand's zero strides do not order the result's layout (87584: view() failed)
    "view of a sum with an expanded operand": (lambda x, y: (x.unsqueeze(0).expand(2, 1, 3, 4) + y).view(4, 6), True),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("name", REGRESSIONS)
def test_what_the_fuzzer_found_on_the_device(name, compiled):
    fn, differentiable = REGRESSIONS[name]
    a, b = values((3, 4), 17), values((3, 4), 18)

    def run(device):
        x = genesis.tensor(a, device=device, requires_grad=differentiable)
        y = genesis.tensor(b, device=device, requires_grad=differentiable)
        out = (genesis.compile(fn) if compiled and device == "cuda" else fn)(x, y)
        assert out.device.type == device
        if differentiable:
            (out * 2.0).sum().backward()
            grads = [None if t.grad is None else t.grad.cpu().numpy() for t in (x, y)]
            return [out.detach().cpu().numpy(), *grads]
        return [out.cpu().numpy()]

    for got, expected in zip(run("cuda"), run("cpu")):
        assert (got is None) == (expected is None)
        if got is not None:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_compiled_functions_backward_without_every_incoming_gradient_stays_on_the_device():
    """(fuzz seed 76121) the gradient of an output that gets none is zeros, made on the device."""
    xs = [
        genesis.tensor(values(shape, 19 + i), device="cuda", requires_grad=True)
        for i, shape in enumerate([(3, 4), (3, 4), (4, 2)])
    ]
    first, second = genesis.compile(lambda x0, x1, x2: (x1 - x0, x0 @ x2))(*xs)
    (first.sum() + second.sum()).backward()
    assert all(x.grad.is_cuda for x in xs)
    expected = np.broadcast_to(-1.0 + values((4, 2), 21).sum(axis=1), (3, 4))
    np.testing.assert_allclose(xs[0].grad.cpu().numpy(), expected, rtol=1e-5)


def test_a_zero_gradient_a_compiled_backward_hands_back_is_made_on_the_device():
    """(fuzz seed 86048) ceil's gradient is zeros that the autodiff pass makes: on the device of the
    value, not the host, though the program returns them as they are."""
    x = genesis.tensor(values((1, 4, 4), 22), device="cuda", requires_grad=True)
    rounded, same = genesis.compile(lambda x0: (x0.ceil().unsqueeze(-3), x0))(x)
    (rounded.sum() + (same * 3.0).sum()).backward()
    assert x.grad.is_cuda
    np.testing.assert_array_equal(x.grad.cpu().numpy(), np.full((1, 4, 4), 3.0, dtype=np.float32))


def test_torch_cudas_questions_about_the_device():
    assert genesis.cuda.get_device_name(0) == "genesis simulated CUDA device"
    assert genesis.cuda.get_device_capability() == (9, 0) and genesis.cuda.is_bf16_supported()
    genesis.cuda.set_device(0)
    with pytest.raises(RuntimeError, match="cuda:1': there is no such CUDA device"):
        genesis.cuda.set_device(1)
    d = genesis.zeros(256, device="cuda")
    genesis.cuda.empty_cache()
    assert genesis.cuda.memory_reserved() >= genesis.cuda.memory_allocated() >= d.numel() * 4


def test_without_a_device_the_questions_are_refused_as_pytorchs(monkeypatch):
    monkeypatch.delenv("GENESIS_FAKE_CUDA")
    assert not genesis.cuda.is_available() and genesis.cuda.device_count() == 0
    assert not genesis.cuda.is_bf16_supported()
    with pytest.raises(RuntimeError, match="no CUDA runtime here"):
        genesis.cuda.get_device_name()


# composites that make constants of their own (positions, divisors, masks): on the device, there
CONSTANTS = {
    "avg_pool2d divisor": lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
    "interpolate": lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
    "reflect pad": lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"),
    "bool attention mask": lambda x: F.scaled_dot_product_attention(
        x, x, x, attn_mask=genesis.tensor(np.tril(np.ones((5, 5), bool)), device=x.device)
    ),
    "scatter_reduce mean": lambda x: x.reshape(-1).scatter_reduce(
        0, genesis.tensor(np.arange(50) % 7, device=x.device), x.reshape(-1) * 2.0, "mean"
    ),
    "cummax": lambda x: genesis.cummax(x, dim=-1).values,
    "mode": lambda x: genesis.mode((x * 2).round(), dim=-1).values,
    "quantile": lambda x: genesis.quantile(x, 0.3, dim=-1),
    "einsum diagonal": lambda x: genesis.einsum("abii->abi", x),
    "repeat_interleave": lambda x: genesis.repeat_interleave(genesis.tensor([1, 0, 2], device=x.device)).float(),
}


@pytest.mark.parametrize("name", CONSTANTS)
def test_composites_make_their_constants_on_the_device(name):
    x = values((2, 1, 5, 5), 30)
    expected = CONSTANTS[name](genesis.tensor(x))
    got = CONSTANTS[name](genesis.tensor(x, device="cuda"))
    assert got.is_cuda and got.shape == expected.shape
    np.testing.assert_allclose(got.cpu().numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_layouts_on_the_device_are_the_cpus():
    """(fuzz seed 82112) a move keeps a transpose's layout, as PyTorch's `.to` does, and an
    elementwise result keeps its operand's memory order, so a later view() fails on both devices."""
    x = genesis.tensor(values((8, 1, 3, 3), 31)).permute(3, 2, 1, 0)
    d = x.cuda()
    assert d.stride() == x.stride() and d.cpu().stride() == x.stride()
    for t in (x, d):
        assert t.cos().stride() == x.stride()
        with pytest.raises(RuntimeError, match="view of a tensor of shape"):
            t.cos().view(4, 3, 6)
    assert d.clone().is_contiguous() and d.contiguous().view(4, 3, 6).is_cuda


@pytest.mark.parametrize("name", ["unique", "unique rows", "bincount", "weighted bincount"])
def test_counting_on_the_device_gives_the_cpus_answers(name):
    data = np.array([3, 1, 3, 0, 1, 3, 7], np.int64)
    ops = {
        "unique": lambda t: genesis.unique(t, return_inverse=True, return_counts=True),
        "unique rows": lambda t: genesis.unique(t.reshape(7, 1).expand(7, 2), dim=0, return_counts=True),
        "bincount": lambda t: (genesis.bincount(t, minlength=9),),
        "weighted bincount": lambda t: (genesis.bincount(t, weights=t.float() * 0.5),),
    }
    expected = ops[name](genesis.tensor(data))
    got = ops[name](genesis.tensor(data, device="cuda"))
    for g, e in zip(got, expected):
        assert g.is_cuda
        np.testing.assert_array_equal(g.cpu().numpy(), e.numpy())


def test_ctc_loss_on_the_device_gives_the_cpus_loss_and_gradient():
    rng = np.random.default_rng(32)
    logits = rng.standard_normal((12, 2, 5)).astype(np.float32)
    targets, input_lengths, target_lengths = [1, 2, 2, 3, 4], [12, 10], [3, 2]

    def loss_and_grad(device):
        x = genesis.tensor(logits, device=device, requires_grad=True)
        loss = F.ctc_loss(
            F.log_softmax(x, dim=-1),
            genesis.tensor(targets, device=device),
            genesis.tensor(input_lengths, device=device),
            genesis.tensor(target_lengths, device=device),
        )
        loss.backward()
        return loss.item(), x.grad.cpu().numpy()

    (got, got_grad), (expected, expected_grad) = loss_and_grad("cuda"), loss_and_grad("cpu")
    assert got == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_a_device_tensor_prints_as_pytorchs_cuda_tensors_do():
    genesis.cuda.reset_transfer_stats()
    assert repr(genesis.tensor([1.0, 2.5], device="cuda")) == "tensor([1.0000, 2.5000], device='cuda:0')"
    assert genesis.cuda.transfer_stats()["device_to_host"] == 1  # printing reads the values: a copy
    half = genesis.tensor([1.0], device="cuda", dtype=genesis.float16, requires_grad=True)
    assert repr(half) == "tensor([1.], device='cuda:0', dtype=genesis.float16, requires_grad=True)"
    assert repr(genesis.zeros(0, 3, device="cuda")) == "tensor([], device='cuda:0', size=(0, 3))"


def test_the_device_of_a_value_no_tracer_recorded_follows_its_inputs_through_a_deep_graph():
    """A pass's tracer that did not record a graph finds each value's device from its inputs' (an
    input on the device, a 0-d host scalar beside it), walking 3000 nodes without recursing."""
    tracer = Tracer()
    with tracing(tracer):
        x = tracer.add_input(genesis.ones(3, device="cuda"))
        scale = tracer.add_input(genesis.tensor(1.5))
        y = x
        for _ in range(3000):
            y = y * scale
    fresh = Tracer(tracer.graph)
    fresh.devices[x._data.name] = x.device
    assert fresh.device_of(y._data.name) is x.device
    assert Tracer(tracer.graph).device_of(y._data.name).type == "cpu"  # no input known: the host
