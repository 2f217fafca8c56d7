"""In-place operations: compute out of place, then write into the target's buffer.

Writing bumps the target's version counter (shared with its views), so a
node whose vjp still needs the old values refuses to run backward. If the
target requires grad, its history moves to the new node; when that node
reads the target itself, it gets a copy of the old values (as PyTorch saves
`original_self`).

A write into a view changes its base too, so the base's history must change
with it (PyTorch's CopySlices). The view op's own vjp is the inverse we need:
it scatters a view-shaped tensor into zeros of the base's shape. The base's
new history is `where(region, scatter(view), base)`, built from genesis ops
so it traces and differentiates like any other; it is repeated up a chain of
views (`t.T[2:]`). Those few rules read no values (only shapes, keys and the
region mask), so their nodes skip the version check that a later write to
the same buffer would otherwise trip.
"""

from __future__ import annotations

from genesis import dispatch, dtypes, grad_mode
from genesis.creation import full, ones_like
from genesis.errors import ShapeError
from genesis.functional.elementwise import where
from genesis.functional.shape import cast, clone, expand
from genesis.ops.op import Kind
from genesis.tape import recorded_inputs
from genesis.tensor import Tensor


def check_inplace_allowed(target):
    if not grad_mode.is_grad_enabled():
        return
    if target.requires_grad and target.is_leaf and not dispatch.stands_for_a_non_leaf(target):
        raise RuntimeError(
            f"a leaf tensor that requires grad (shape {list(target.shape)}) is being used in an in-place "
            "operation; wrap the update in `with genesis.no_grad():`"
        )
    view_node = _view_node(target)
    while view_node is not None:
        base = recorded_inputs(view_node)[0]
        if base.requires_grad and base.is_leaf:
            raise RuntimeError(
                f"a view of a leaf tensor that requires grad (shape {list(base.shape)}) is being used in an "
                "in-place operation; wrap the update in `with genesis.no_grad():`"
            )
        view_node = _view_node(base)


def _view_node(t):
    """How `t` was made from its base if it is a view: its autograd node, or the link dispatch keeps
    for every view (a view of a tensor without history has no node, and a write into it must still
    reach the base's history)."""
    node = t._node
    if node is not None and node.inputs is not None and node.op.kind is Kind.VIEW:
        return node
    return t._view_of


def _rebase(view, view_node):
    """After a write into `view`, give each tensor it views the write's history (see the docstring)."""
    while view_node is not None and grad_mode.is_grad_enabled():
        inputs = recorded_inputs(view_node)  # (a base reshaped in place since: its earlier self)
        base = inputs[0]
        if not (view.requires_grad or base.requires_grad):
            return
        next_node = _view_node(base)
        stop = {id(view._node), id(base._node)}
        rule = view_node.op.vjp[0]

        def scatter(values):  # called only within this iteration
            return rule(values, None, *inputs, **view_node.attrs)  # noqa: B023

        with grad_mode.no_grad():
            region = scatter(ones_like(view)) != 0
        rebased = where(region, scatter(view), base)
        _skip_version_checks(rebased._node, stop)
        base._node = rebased._node
        base.requires_grad = True
        view, view_node = base, next_node


def _skip_version_checks(node, stop):
    stack = [node]
    while stack:
        node = stack.pop()
        if node is None or id(node) in stop or node.versions is None:
            continue
        node.versions = None
        stack.extend(child for child, _ in node.edges)


def assign_inplace(target, result):
    """Make `target` hold `result`'s values (and, under autograd, its history)."""
    check_inplace_allowed(target)
    view_node = _view_node(target)
    if result.shape != target.shape:
        raise ShapeError(
            f"an in-place result of shape {list(result.shape)} does not fit the target of shape {list(target.shape)}"
        )
    if result.dtype.category > target.dtype.category:
        raise TypeError(
            f"an in-place result of dtype {result.dtype.name} can't be cast to the target's dtype {target.dtype.name}"
        )
    if dispatch.is_tracing():
        return _traced_write(target, result)
    node = result._node
    _keep_old_input(target, node)
    dispatch.write(target, result)  # numpy casts to the target's dtype as it copies
    _take_history(target, node)
    if view_node is not None:
        _rebase(target, view_node)
    return target


def _keep_old_input(target, node):
    """If the write's own node reads the target, hand it the old values (PyTorch's `original_self`)."""
    if (
        node is not None
        and node.versions is not None
        and any(x is target and v is not None for x, v in zip(node.inputs, node.versions))
    ):
        old = Tensor._make(dispatch.old_values(target), target.dtype, target.device, target.requires_grad)
        old._version = [target._version[0]]  # the version the node recorded for its input
        old._node = target._node
        node.inputs = tuple(old if x is target else x for x in node.inputs)


def _take_history(target, node):
    """After the write: a new version, and the result's history (if it has one) moves to the target."""
    target._version[0] += 1
    if target._view_of is not None:  # a view's own history is right as of its own write
        target._view_of.version = target._version[0]
    if node is not None:
        target._node = node
        target.requires_grad = True
        if node.versions is not None:
            node.versions = node.versions[:-1] + (target._version[0],)


def _traced_write(target, result, *, takes_history=True):
    """The in-place write under tracing: the target's buffer is renamed to the result's value
    (see `Tracer.write`); autograd's bookkeeping is eager's (an overwrite with values that carry no
    history for it, `takes_history=False`, leaves the target's own)."""
    node = result._node if takes_history else None
    if node is None and target._node is not None:
        # under no_grad: eager's target keeps its history for the new values, and a graph's gradient
        # flows only to the producer of the value a tensor holds
        dispatch.untraceable("an in-place write under no_grad into a tensor that has a history")
    _keep_old_input(target, node)
    if node is not None and result.dtype is not target.dtype:
        # the graph's value is the cast, so the history is too (its vjp casts back, as eager's fitting
        # of a gradient to its input's dtype does); a cast without one would stop the backward there
        value = cast(result, target.dtype)
        node = value._node
    else:
        with grad_mode.no_grad():
            value = cast(result, target.dtype)
    view_node = _view_node(target)
    rebased = _bases_after_write(value, view_node) if view_node is not None else []
    dispatch.write(target, value, rebased)
    _take_history(target, node)
    # the bases' new histories read `value`, the target's contents from now on, so a backward
    # through them checks the write's node against `value`: it counts versions with the target
    value._version = target._version
    for base, base_value in rebased:  # each base's history, as eager's _rebase gives it
        if base_value._node is not None:
            base._node = base_value._node
            base.requires_grad = True
        if base._view_of is not None:  # its value was renamed with it: no refresh at its next use
            base._view_of.version = base._version[0]
    dispatch.remake_views(target)
    return target


def _bases_after_write(value, view_node):
    """What each tensor up a view's chain of bases holds once `value` is written into the view, as
    (base, its value) from the view's own base to the undivided one: `where(region, scatter(value),
    base)` per link, as ops the trace records."""
    rebased = []
    while view_node is not None:
        inputs = recorded_inputs(view_node)
        base = inputs[0]
        rule = view_node.op.vjp[0]
        with grad_mode.no_grad():
            region = rule(ones_like(value), None, *inputs, **view_node.attrs) != 0
        base_value = where(region, rule(value, None, *inputs, **view_node.attrs), base)
        _skip_version_checks(base_value._node, {id(value._node), id(base._node)})
        rebased.append((base, base_value))
        value, view_node = base_value, _view_node(base)
    return rebased


def inplace(fn):
    """Turn an out-of-place function f(x, ...) into its in-place form x.f_(...)."""

    def method(target, *args, **kwargs):
        check_inplace_allowed(target)
        return assign_inplace(target, fn(target, *args, **kwargs))

    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place {fn.__name__}."
    return method


def reshaped_inplace(fn):
    """squeeze_ and unsqueeze_: the target itself takes the new shape (PyTorch changes its metadata).

    The target's earlier state becomes a tensor of its own, which the reshape reads, so the reshape's
    history (which the target now holds) does not read the target. Traced, the target takes the
    reshape's Symbol (a view of its old one); a compiled function's input breaks the graph here
    (dispatch.reshape_in_place)."""

    def method(target, *args, **kwargs):
        check_inplace_allowed(target)
        before = Tensor._make(target._data, target.dtype, target.device, target.requires_grad)
        before._node, before._version, before._view_of = target._node, target._version, target._view_of
        dispatch.reshape_in_place(target, fn(before, *args, **kwargs), f"{fn.__name__}_ (an in-place change of shape)")
        return target

    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place {fn.__name__}: the tensor takes the new shape."
    return method


def fill_(target, value):
    if hasattr(value, "_data"):
        if value.ndim:
            raise ValueError(f"fill_ takes a number or a 0-d tensor, got a tensor of shape {list(value.shape)}")
        if value.requires_grad and grad_mode.is_grad_enabled():
            # as in PyTorch, a 0-d value with history takes the sum of the target's gradient
            return _overwrite(target, expand(value.to(target.dtype), target.shape))
        value = value.item()
    with grad_mode.no_grad():
        source = full(target.shape, value, dtype=target.dtype, device=target.device)
    return _overwrite(target, source)


def zero_(target):
    return fill_(target, 0)


def copy_(target, source):
    """`target`'s values become `source`'s, broadcast, cast and moved to the target's device."""
    if tuple(source.shape) != target.shape:
        source = expand(source, target.shape)
    return _overwrite(target, source.to(target.device).to(target.dtype))


def _overwrite(target, source):
    """Replace every value. As in PyTorch, a target that requires grad keeps requiring it: its old
    history gets a zero gradient (a `where` that takes nothing from it), the source's gets its own."""
    check_inplace_allowed(target)
    if grad_mode.is_grad_enabled() and target.requires_grad:
        with grad_mode.no_grad():
            nowhere = full(target.shape, False, dtype=dtypes.bool_, device=target.device)
        result = where(nowhere, target, source)
        result._node.versions = None  # its vjp reads only the constant condition: no copy of the target
        return assign_inplace(target, result)
    if source.requires_grad and grad_mode.is_grad_enabled():
        return assign_inplace(target, clone(source))
    if dispatch.is_tracing():
        return _traced_write(target, source, takes_history=False)
    view_node = _view_node(target)
    dispatch.write(target, source)
    target._version[0] += 1
    if target._view_of is not None:
        target._view_of.version = target._version[0]
    if view_node is not None:
        _rebase(target, view_node)  # the base's region now holds constants: no gradient flows there
    return target


__all__ = ["assign_inplace", "inplace", "reshaped_inplace", "fill_", "zero_", "copy_"]
