"""Tensors: creation, metadata, host access, repr and devices, against PyTorch.

Each creation function is called with the same arguments in genesis and in
torch and must give the same shape, dtype and values (ranges with float
steps, empty ranges, eye with a rectangle, filled tensors that infer their
dtype from the fill value). The repr is compared with torch's own text,
element for element: only the module name and grad_fn names differ.
"""

import re

import ml_dtypes
import numpy as np
import pytest
import torch
from optest import TORCH_DTYPE, assert_close

import genesis

RNG = np.random.default_rng(0)


def assert_same(g, t, what=""):
    assert isinstance(g, genesis.Tensor), what
    assert g.shape == tuple(t.shape), f"{what}: shape {g.shape} != torch's {tuple(t.shape)}"
    assert TORCH_DTYPE[g.dtype] == t.dtype, f"{what}: dtype {g.dtype} != torch's {t.dtype}"
    assert_close(g, t, g.dtype, what, rtol=0 if g.dtype is genesis.float64 else None)


# ---- creation, against torch ----------------------------------------------
# (id, call): `call(module)` runs against genesis and torch alike
CREATION = [
    ("tensor_nested_int", lambda m: m.tensor([[1, 2, 3], [4, 5, 6]])),
    ("tensor_mixed", lambda m: m.tensor([[1, 2.5], [True, 0]])),
    ("tensor_bool", lambda m: m.tensor([[True], [False]])),
    ("tensor_scalar", lambda m: m.tensor(-7.25)),
    ("tensor_dtype", lambda m: m.tensor([1.7, -2.2], dtype=m.int32)),
    ("tensor_empty", lambda m: m.tensor([])),
    ("zeros", lambda m: m.zeros(3, 5)),
    ("zeros_tuple", lambda m: m.zeros((2, 0, 3), dtype=m.int8)),
    ("ones", lambda m: m.ones([4, 1, 3], dtype=m.float16)),
    ("ones_scalar_shape", lambda m: m.ones(())),
    ("full_float", lambda m: m.full((2, 3), 1.5)),
    ("full_int", lambda m: m.full((2, 3), 7)),
    ("full_bool", lambda m: m.full((3,), True)),
    ("full_dtype", lambda m: m.full((3, 1), 2, dtype=m.float64)),
    ("arange_int", lambda m: m.arange(7)),
    ("arange_start_end", lambda m: m.arange(-3, 11, 4)),
    ("arange_float_step", lambda m: m.arange(0, 1, 0.3)),
    ("arange_negative_step", lambda m: m.arange(5, -2.5, -1.5)),
    ("arange_empty", lambda m: m.arange(3, 3)),
    ("arange_dtype", lambda m: m.arange(0, 10, 3, dtype=m.float64)),
    ("linspace", lambda m: m.linspace(-1, 2, 7)),
    ("linspace_one", lambda m: m.linspace(3, 5, 1)),
    ("linspace_dtype", lambda m: m.linspace(0, 1, 11, dtype=m.float64)),
    ("eye", lambda m: m.eye(4)),
    ("eye_rect", lambda m: m.eye(3, 5, dtype=m.int64)),
    ("eye_tall", lambda m: m.eye(5, 2)),
]


@pytest.mark.parametrize("call", [c[1] for c in CREATION], ids=[c[0] for c in CREATION])
def test_creation_matches_torch(call):
    assert_same(call(genesis), call(torch))


def test_empty_has_shape_and_dtype():
    x = genesis.empty(3, 4, dtype=genesis.int32)
    assert x.shape == (3, 4) and x.dtype is genesis.int32


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "rand_like", "randn_like"])
def test_like_functions_keep_shape_and_dtype(name):
    source = genesis.tensor(RNG.standard_normal((3, 1, 4)), dtype=genesis.float64)
    out = getattr(genesis, name)(source)
    assert out.shape == (3, 1, 4) and out.dtype is genesis.float64
    narrowed = getattr(genesis, name)(source, dtype=genesis.float16)
    assert narrowed.dtype is genesis.float16
    if name in ("zeros_like", "ones_like"):
        assert_same(out, getattr(torch, name)(torch.zeros(3, 1, 4, dtype=torch.float64)))


def test_full_like_takes_the_source_dtype():
    source = genesis.tensor([[1, 2, 3]], dtype=genesis.int32)
    assert_same(genesis.full_like(source, 4), torch.full_like(torch.zeros(1, 3, dtype=torch.int32), 4))
    assert genesis.full_like(source, 2.5, dtype=genesis.float32).tolist() == [[2.5, 2.5, 2.5]]


def test_tensor_copies_its_data_but_from_numpy_shares_it():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    copied, shared = genesis.tensor(array), genesis.from_numpy(array)
    array[0, 0] = 100.0
    assert copied.tolist()[0][0] == 0.0
    assert shared.tolist()[0][0] == 100.0
    assert shared.dtype is genesis.float32
    assert genesis.from_numpy(np.zeros(2, dtype=ml_dtypes.bfloat16)).dtype is genesis.bfloat16


def test_from_numpy_refuses_what_it_cannot_hold():
    with pytest.raises(TypeError, match="complex128 has no genesis equivalent"):
        genesis.from_numpy(np.zeros(2, dtype=np.complex128))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        genesis.from_numpy([1, 2])


def test_tensor_refuses_ragged_data_and_odd_elements():
    with pytest.raises(ValueError, match="ragged"):
        genesis.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="str"):
        genesis.tensor(["a", "b"])


def test_tensor_constructor_and_requires_grad():
    x = genesis.Tensor([[1.0, 2.0]], requires_grad=True)
    assert x.requires_grad and x.is_leaf and x.grad is None
    y = genesis.tensor(x)  # a copy, detached from x's history
    assert not y.requires_grad and y.tolist() == x.tolist()


# ---- metadata and host access ----------------------------------------------
def test_metadata_matches_torch():
    array = RNG.standard_normal((2, 3, 5))
    g, t = genesis.tensor(array), torch.tensor(array)
    assert g.shape == tuple(t.shape) and g.ndim == t.ndim == g.dim()
    assert g.size() == tuple(t.size()) and g.size(-1) == t.size(-1) == 5
    assert g.numel() == t.numel() and len(g) == len(t)
    assert g.dtype is genesis.float64 and g.device == genesis.device("cpu")
    assert str(g.device) == "cpu" and repr(g.device) == "device(type='cpu')"
    assert_same(g.T, t.permute(2, 1, 0), "T reverses every dim")
    assert genesis.tensor(RNG.standard_normal((3, 7))).T.shape == (7, 3)
    with pytest.raises(IndexError, match="dim 3 is out of range"):
        g.size(3)


def test_numpy_item_tolist():
    g = genesis.tensor([[1.5, -2.0], [3.25, 4.0]])
    assert isinstance(g.numpy(), np.ndarray) and g.numpy().dtype == np.float32
    assert g.tolist() == torch.tensor([[1.5, -2.0], [3.25, 4.0]]).tolist()
    assert genesis.tensor([[2.5]]).item() == 2.5 and isinstance(genesis.tensor([[2.5]]).item(), float)
    assert genesis.tensor(7).item() == 7 and isinstance(genesis.tensor(7).item(), int)
    assert genesis.tensor(True).item() is True
    assert genesis.tensor(1.5, dtype=genesis.bfloat16).item() == 1.5
    assert genesis.tensor([1.5], dtype=genesis.bfloat16).tolist() == [1.5]
    assert genesis.tensor(3.0).tolist() == 3.0
    assert float(genesis.tensor([0.5])) == 0.5 and int(genesis.tensor(4)) == 4


def test_item_of_many_elements_and_numpy_of_grad_tensor_are_refused():
    with pytest.raises(ValueError, match=r"exactly one element.*\(2, 2\)"):
        genesis.ones(2, 2).item()
    x = genesis.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(genesis.ones(2))
    with pytest.raises(TypeError, match="0-d"):
        len(genesis.tensor(1.0))


def test_iteration_and_index_protocol():
    g = genesis.tensor([[1, 2], [3, 4], [5, 6]])
    assert [row.tolist() for row in g] == [[1, 2], [3, 4], [5, 6]]
    assert list(range(10))[genesis.tensor(3)] == 3
    with pytest.raises(TypeError, match="integer"):
        list(range(10))[genesis.tensor(1.0)]


# ---- repr --------------------------------------------------------------------
def normalized_repr(x) -> str:
    """torch's repr in genesis's names; a suffix may wrap at a different column (the module
    names differ in length), so the break before a suffix is normalized too."""
    text = repr(x).replace("torch.", "genesis.")
    text = re.sub(r"grad_fn=<\w+>", "grad_fn=<>", text)
    return re.sub(r",\s+(dtype|grad_fn|requires_grad|size)=", r", \1=", text)


REPR_CASES = [
    ("fixed", np.array([1.5, 2.0, -3.0])),
    ("whole", np.array([[1.0, 2.0], [3.0, -40.0]])),
    ("scientific_small", np.array([1e-8, 1.0])),
    ("scientific_span", np.array([1e-2, 1e10])),
    ("scientific_whole", np.array([1e9, 1.0])),
    ("non_finite", np.array([np.inf, -np.inf, np.nan, 1.0])),
    ("all_nan", np.array([np.nan, np.nan])),
    ("zeros", np.zeros((2, 2))),
    ("scalar", np.array(3.25)),
    ("3d", RNG.standard_normal((2, 3, 4))),
    ("wrapped_rows", RNG.standard_normal((3, 30))),
    ("summarized_1d", RNG.standard_normal(1500)),
    ("summarized_2d", RNG.standard_normal((40, 50)) * 1e5),
    ("empty_1d", np.zeros(0)),
    ("empty_3d", np.zeros((2, 0, 3))),
]


@pytest.mark.parametrize(
    "dtype",
    [
        genesis.float32,
        genesis.float64,
        genesis.float16,
        genesis.bfloat16,
        genesis.int64,
        genesis.int32,
        genesis.uint8,
        genesis.bool,
    ],
    ids=lambda d: d.name,
)
@pytest.mark.parametrize("array", [c[1] for c in REPR_CASES], ids=[c[0] for c in REPR_CASES])
def test_repr_matches_torch(array, dtype):
    if not dtype.is_floating_point:
        array = np.nan_to_num(np.abs(array), posinf=3.0) % 200  # integer casts of nan/inf are undefined
    assert normalized_repr(genesis.tensor(array, dtype=dtype)) == normalized_repr(
        torch.tensor(array).to(TORCH_DTYPE[dtype])
    )


def test_repr_shows_requires_grad_and_grad_fn_as_torch_does():
    g = genesis.tensor([1.5, 2.0], dtype=genesis.float64, requires_grad=True)
    t = torch.tensor([1.5, 2.0], dtype=torch.float64, requires_grad=True)
    assert repr(g) == "tensor([1.5000, 2.0000], dtype=genesis.float64, requires_grad=True)"
    assert normalized_repr(g) == normalized_repr(t)
    assert normalized_repr(g * 2) == normalized_repr(t * 2)
    assert repr(g * 2).endswith("grad_fn=<mul_backward>)")
    assert "requires_grad" not in repr(g.detach())


def test_is_floating_point_is_a_method_as_in_torch():
    for dtype in (genesis.float16, genesis.float32, genesis.float64, genesis.int64, genesis.bool):
        t = torch.zeros(2, dtype=getattr(torch, dtype.name))
        assert genesis.zeros(2, dtype=dtype).is_floating_point() == t.is_floating_point()


# ---- devices -----------------------------------------------------------------
def test_cpu_device_everywhere():
    assert genesis.device("cpu") == genesis.device(None) == "cpu"
    x = genesis.zeros(2, device="cpu")
    assert x.device.type == "cpu"
    assert x.to("cpu") is x and x.cpu() is x
    # what PyTorch programs branch on (DCGAN's data_parallel check)
    assert x.is_cpu and not (x.is_cuda or x.is_xpu or x.is_mps)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        genesis.device("tpu")
    with pytest.raises(TypeError, match="string"):
        genesis.device(3.5)


@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_runtime_says_so(spec, monkeypatch):
    # the probe is replaced so the message is checked on machines with a GPU as well
    monkeypatch.setattr(genesis.runtime.devices, "is_cuda_available", lambda: False)
    for make in (
        lambda: genesis.device(spec),
        lambda: genesis.zeros(2, device=spec),
        lambda: genesis.tensor([1.0], device=spec),
        lambda: genesis.ones(2).to(spec),
    ):
        with pytest.raises(RuntimeError, match=f"'{spec}'.*no CUDA runtime here.*GENESIS_FAKE_CUDA=1"):
            make()


def test_cuda_and_accelerator_answer_what_genesis_tensors_can_use():
    """A ported program asks `genesis.cuda.is_available()` before `.to("cuda")`: the answer must match
    what placing a tensor there does, so the usual device choice always runs."""
    try:
        genesis.zeros(1).to("cuda")
        usable = True
    except (RuntimeError, NotImplementedError):
        usable = False
    assert genesis.cuda.is_available() == usable == (genesis.cuda.device_count() > 0)
    assert genesis.accelerator.is_available() == usable
    assert (genesis.accelerator.current_accelerator() is None) == (not usable)
    device = genesis.device("cuda" if genesis.cuda.is_available() else "cpu")
    assert genesis.ones(2, device=device).sum().item() == 2.0
