"""Shape arithmetic for the program generator, written from PyTorch's rules, not from genesis's.

The generator predicts each statement's shape so that the next statement can
be chosen to fit (an operand that broadcasts, a dim that exists, a reshape
with the same number of elements). The rules are written here again, not
borrowed from `genesis.ops.shape_rules`, so that a wrong shape rule in genesis
shows up as a refusal or a mismatch instead of shaping the programs that
would catch it. Every helper draws from the `random.Random` it is given.
"""

from __future__ import annotations

import math


def numel(shape) -> int:
    return math.prod(shape)


def broadcast(a, b):
    """The broadcast shape, or None where the shapes do not broadcast."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


def partner(rng, shape, sizes, cap):
    """A shape that broadcasts with `shape`: mostly to `shape` itself (dims dropped from the front or
    set to 1), sometimes to a larger one (a new leading dim, or a size where `shape` has a 1)."""
    dims = list(shape)
    if dims and rng.random() < 0.35:
        dims = dims[rng.randint(0, len(dims)) :]
    dims = [1 if rng.random() < 0.3 else d for d in dims]
    offset = len(shape) - len(dims)
    dims = [
        rng.choice(sizes) if shape[offset + i] == 1 and d == 1 and rng.random() < 0.3 else d for i, d in enumerate(dims)
    ]
    if len(shape) < 4 and rng.random() < 0.12:
        dims = [rng.choice(sizes)] + [1] * (len(shape) - len(dims)) + dims
    result = broadcast(shape, tuple(dims))
    if result is None or numel(result) > cap:
        return tuple(shape)
    return tuple(dims)


def reduction_dims(rng, shape):
    """None (all dims), one dim or a tuple of distinct dims, each maybe negative; size-1 dims favoured
    now and then, since a reduction over them is a reshape in disguise."""
    rank = len(shape)
    draw = rng.random()
    if draw < 0.2:
        return None
    if rank == 0:
        return rng.choice([0, -1])
    ones = [d for d in range(rank) if shape[d] == 1]
    if draw < 0.6:
        dim = rng.choice(ones) if ones and rng.random() < 0.3 else rng.randrange(rank)
        return dim - rank if rng.random() < 0.4 else dim
    chosen = rng.sample(range(rank), rng.randint(1, rank))
    return tuple(d - rank if rng.random() < 0.4 else d for d in chosen)


def dims_list(dim, rank):
    """The non-negative dims a reduction's `dim` argument names (a 0-d tensor takes dim 0 or -1)."""
    if dim is None:
        return list(range(rank))
    dims = dim if isinstance(dim, tuple) else (dim,)
    return sorted({d % rank for d in dims}) if rank else []


def reduced(shape, dim, keepdim):
    dims = dims_list(dim, len(shape))
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def reduction_length(shape, dim) -> int:
    return numel([shape[d] for d in dims_list(dim, len(shape))])


def factorize(rng, count, max_rank=4):
    """A random shape with `count` elements."""
    if count == 0:
        return (0,) if rng.random() < 0.5 else (rng.randint(1, 3), 0)
    rank = rng.randint(0 if count == 1 else 1, max_rank)
    if rank == 0:
        return ()
    dims, left = [], count
    for _ in range(rank - 1):
        divisors = [d for d in range(1, left + 1) if left % d == 0]
        d = rng.choice(divisors)
        dims.append(d)
        left //= d
    dims.append(left)
    rng.shuffle(dims)
    return tuple(dims)


def slice_key(rng, shape):
    """A basic-indexing key as source text and the shape it selects: slices, steps, integers, None, Ellipsis."""
    rank = len(shape)
    if rank and rng.random() < 0.2:  # a leading Ellipsis: the key indexes the last dim only
        text, kept = _dim_key(rng, shape[-1])
        return f"..., {text}", tuple(shape[:-1]) + kept
    parts, out = [], []
    count = rng.randint(1, rank) if rank else 0
    for size in shape[:count]:
        if rng.random() < 0.1:
            parts.append("None")
            out.append(1)
        text, kept = _dim_key(rng, size)
        parts.append(text)
        out.extend(kept)
    out.extend(shape[count:])
    if not parts:
        parts.append("None")
        out.insert(0, 1)
    return ", ".join(parts), tuple(out)


def _dim_key(rng, size):
    if size == 0:
        return ":", (0,)
    draw = rng.random()
    if draw < 0.25:
        index = rng.randrange(size)
        return str(index - size if rng.random() < 0.3 else index), ()
    if draw < 0.4:
        return ":", (size,)
    start = rng.randint(0, size - 1)
    stop = rng.randint(start + 1, size)
    step = rng.choice([1, 1, 2, 3])
    length = len(range(start, stop, step))
    stop_text = "" if stop == size else str(stop - size if rng.random() < 0.3 else stop)
    start_text = "" if start == 0 else str(start)
    return f"{start_text}:{stop_text}" + (f":{step}" if step != 1 else ""), (length,)


def expanded(rng, shape, sizes, cap):
    """Sizes for `expand`: size-1 dims grown, up to two new leading dims, -1 for some kept dims."""
    lead = [rng.choice(sizes) for _ in range(rng.choice([0, 1, 1, 2]) if len(shape) < 4 else 0)]
    grown = [rng.choice(sizes) if s == 1 and rng.random() < 0.6 else s for s in shape]
    if numel(lead + grown) > cap:
        lead, grown = [], list(shape)
    result = tuple(lead + grown)
    text = [str(s) for s in lead] + [("-1" if g == s and rng.random() < 0.3 else str(g)) for g, s in zip(grown, shape)]
    return text, result
