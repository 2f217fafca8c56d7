"""layer_norm, rms_norm, group_norm, batch_norm, instance_norm: mean/variance compositions.

Each normalizes with the biased variance over its dims, `(x - mean) *
rsqrt(var + eps)`, then applies the affine weight and bias. fp16/bf16 inputs
compute in float32 and round once (`upcast`/`round_like`), as PyTorch's
kernels do; under autocast they stay float32.

batch_norm updates the running statistics in place under `no_grad`, with the
unbiased batch variance, as PyTorch does: `running = (1 - momentum) *
running + momentum * batch`. Eagerly, on big inputs, it runs as a compiled
program (functional/fused.py): some twenty passes over memory become a few
fused kernels.
"""

from __future__ import annotations

from genesis import functional as GF
from genesis.errors import ShapeError
from genesis.functional.fused import fused_in_eager
from genesis.grad_mode import no_grad
from genesis.nn.functional.activation import finfo_eps, round_like, upcast


def _normalize(x, dims, eps):
    mean = GF.mean(x, dims, keepdim=True)
    centered = x - mean
    var = GF.mean(centered * centered, dims, keepdim=True)
    return centered * GF.rsqrt(var + eps)


def _affine(out, weight, bias):
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def _trailing_dims(x, normalized_shape, name):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or tuple(x.shape[x.ndim - len(shape) :]) != shape or len(shape) > x.ndim:
        raise ShapeError(
            f"{name}: normalized_shape {list(shape)} does not match the trailing dims of the "
            f"input of shape {list(x.shape)}"
        )
    return shape, tuple(range(x.ndim - len(shape), x.ndim))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    shape, dims = _trailing_dims(x, normalized_shape, "layer_norm")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ShapeError(
                f"layer_norm: {name} of shape {list(t.shape)} must have the normalized shape {list(shape)}"
            )
    return _layer_norm(x, dims, weight, bias, eps)


@fused_in_eager
def _layer_norm(x, dims, weight, bias, eps):
    return round_like(_affine(_normalize(upcast(x), dims, eps), weight, bias), x)


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """x * rsqrt(mean(x^2) + eps) * weight; eps defaults to the dtype's machine epsilon."""
    shape, dims = _trailing_dims(x, normalized_shape, "rms_norm")
    work = upcast(x)
    if eps is None:
        eps = finfo_eps(x.dtype)
    out = work * GF.rsqrt(GF.mean(work * work, dims, keepdim=True) + eps)
    return round_like(_affine(out, weight, None), x)


def group_norm(x, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ShapeError(
            f"group_norm: the {x.shape[1] if x.ndim > 1 else 0} channels of input shape "
            f"{list(x.shape)} cannot be split into {num_groups} groups"
        )
    n, c = x.shape[:2]
    work = upcast(x)
    grouped = GF.reshape(work, (n, num_groups, -1))
    out = GF.reshape(_normalize(grouped, (2,), eps), x.shape)
    channel_shape = (1, c) + (1,) * (x.ndim - 2)
    out = _affine(
        out,
        None if weight is None else GF.reshape(weight, channel_shape),
        None if bias is None else GF.reshape(bias, channel_shape),
    )
    return round_like(out, x)


def batch_norm(
    x,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
):
    """Normalize over every dim but the channels (dim 1): (N, C) or (N, C, *) inputs."""
    if x.ndim < 2:
        raise ShapeError(f"batch_norm expects an input of shape (N, C) or (N, C, *), got {list(x.shape)}")
    channels = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ShapeError(
                f"batch_norm: {name} of shape {list(t.shape)} does not match the {channels} "
                f"channels of the input of shape {list(x.shape)}"
            )
    if training:
        count = x.numel() // channels if channels else 0
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
    elif running_mean is None or running_var is None:
        raise ValueError("batch_norm in eval mode needs running_mean and running_var")
    return _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)


@fused_in_eager
def _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps):
    channels = x.shape[1]
    dims = (0,) + tuple(range(2, x.ndim))
    channel_shape = (1, channels) + (1,) * (x.ndim - 2)
    work = upcast(x)
    if training:
        count = x.numel() // channels
        mean = GF.mean(work, dims, keepdim=True)
        centered = work - mean
        var = GF.mean(centered * centered, dims, keepdim=True)
        out = centered * GF.rsqrt(var + eps)
        if running_mean is not None and running_var is not None:
            with no_grad():
                batch_mean = GF.reshape(mean, (channels,))
                unbiased_var = GF.reshape(var, (channels,)) * (count / (count - 1))
                running_mean.copy_(running_mean * (1.0 - momentum) + batch_mean * momentum)
                running_var.copy_(running_var * (1.0 - momentum) + unbiased_var * momentum)
    else:
        mean = GF.reshape(upcast(running_mean), channel_shape)
        var = GF.reshape(upcast(running_var), channel_shape)
        out = (work - mean) * GF.rsqrt(var + eps)
    out = _affine(
        out,
        None if weight is None else GF.reshape(weight, channel_shape),
        None if bias is None else GF.reshape(bias, channel_shape),
    )
    return round_like(out, x)


def instance_norm(
    x,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
):
    """Normalize each sample's channels over their own positions: batch_norm of a batch of one with
    N*C channels, as PyTorch computes it (the running statistics, if given, are averaged over N)."""
    if x.ndim < 3:
        raise ShapeError(f"instance_norm expects an input of shape (N, C, *), got {list(x.shape)}")
    n, c = x.shape[:2]

    def per_instance(t):  # a copy per sample, which batch_norm updates in place
        return None if t is None else GF.reshape(GF.expand(GF.reshape(t, (1, c)), (n, c)), (n * c,))

    stats = [per_instance(running_mean), per_instance(running_var)]
    out = batch_norm(
        GF.reshape(x, (1, n * c, *x.shape[2:])),
        stats[0],
        stats[1],
        None,
        None,
        use_input_stats,
        momentum,
        eps,
    )
    if running_mean is not None and use_input_stats:
        with no_grad():
            running_mean.copy_(GF.mean(GF.reshape(stats[0], (n, c)), 0))
            running_var.copy_(GF.mean(GF.reshape(stats[1], (n, c)), 0))
    channel_shape = (1, c) + (1,) * (x.ndim - 2)
    return _affine(
        GF.reshape(out, x.shape),
        None if weight is None else GF.reshape(weight, channel_shape),
        None if bias is None else GF.reshape(bias, channel_shape),
    )


__all__ = ["layer_norm", "rms_norm", "group_norm", "batch_norm", "instance_norm"]
