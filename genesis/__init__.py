"""genesis: a small compiler-first deep-learning framework with a PyTorch-style API."""

from genesis import dtypes
from genesis.dtypes import (
    DType,
    bool_ as bool,
    uint8,
    int8,
    int16,
    int32,
    int64,
    float16,
    bfloat16,
    float32,
    float64,
    get_default_dtype,
    set_default_dtype,
    promote_types,
)
from genesis.runtime.devices import Device, device, is_cuda_available
from genesis.runtime import memory as _memory

_memory.keep_freed_memory()  # large arrays are reused without page faults (runtime/memory.py)
from genesis.tensor import Tensor
from genesis import ops  # noqa: F401  (registers every primitive)
from genesis.functional import *  # noqa: F401,F403
from genesis.functional import abs, all, any, max, min, pow, round, sum  # noqa: F401
from genesis.creation import (
    tensor,
    as_tensor,
    from_numpy,
    from_dlpack,
    zeros,
    ones,
    full,
    empty,
    zeros_like,
    ones_like,
    full_like,
    empty_like,
    arange,
    linspace,
    eye,
    rand,
    randn,
    randint,
    randperm,
    multinomial,
    rand_like,
    randn_like,
    randint_like,
)
from genesis.random import Generator, manual_seed, seed, initial_seed, get_rng_state, set_rng_state
from genesis.autograd import (
    no_grad,
    enable_grad,
    set_grad_enabled,
    is_grad_enabled,
    inference_mode,
    is_inference_mode_enabled,
)
from genesis import autograd  # noqa: F401
from genesis import tensor_methods

tensor_methods.install(Tensor)  # Tensor sits below the ops; the methods that compute come from above

half = float16
float = float32
double = float64
long = int64
int = int32
short = int16

from genesis.version import __version__  # noqa: E402

# the layers above the eager core: training API, checkpoints, data, the compiler
from genesis import accelerator, amp, backends, cuda, data, distributed, nn, optim, utils  # noqa: E402,F401
import genesis.linalg  # noqa: E402,F401  (the submodule, not functional.linalg that the star import brought)
from genesis.serialization import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402,F401
from genesis.compiler import compile  # noqa: E402,F401

save, load = save_checkpoint, load_checkpoint
