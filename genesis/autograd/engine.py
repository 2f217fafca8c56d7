"""The backward engine: runs the vjp rules of recorded nodes in reverse order.

Gradients for one node are summed before its rules run, so every rule and
hook sees the total gradient of its output. Each input's gradient is summed
back to the input's shape (broadcasting) and cast to its dtype here, once,
so that vjp rules need not. With `create_graph=True` the rules run with grad
mode on: they are genesis ops, so their results carry a graph of their own
(higher-order gradients).
"""

from __future__ import annotations

import contextlib

import numpy as np

from genesis import creation, dispatch, grad_mode
from genesis import functional as F
from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.tape import recorded_inputs
from genesis.tensor import POST_ACCUMULATE_HOOKS, Tensor


def _tape_children(node):
    return [child for child, _ in node.edges] if node.inputs is not None else ()


def topological_order(roots, children=_tape_children, key=id):
    """Nodes reachable from `roots`, each before the nodes that feed it.

    `children(node)` lists the nodes that feed `node` (None where none does), in input
    order; `key` identifies a node. The tape's nodes by default; the compiler's autodiff
    pass walks graph values with the same order, so its sums add up as eager's do."""
    order, seen = [], set()
    for root in roots:
        if root is None or key(root) in seen:
            continue
        seen.add(key(root))
        stack = [(root, iter(children(root)))]
        while stack:
            node, edges = stack[-1]
            for child in edges:
                if child is not None and key(child) not in seen:
                    seen.add(key(child))
                    stack.append((child, iter(children(child))))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


class VersionError(RuntimeError):
    """A value a gradient needs was changed in place after the op that saved it ran."""


def _check_versions(node, out):
    if node.versions is None:
        return
    *input_versions, out_version = node.versions
    for x, version in zip(node.inputs, input_versions):
        if version is not None and x._version[0] != version:
            raise VersionError(
                f"one of the tensors needed to compute the gradient of {node.op.name} (shape {list(x.shape)}, "
                f"dtype {x.dtype.name}) was modified by an in-place operation: it is at version "
                f"{x._version[0]}, expected {version}. Use an out-of-place op or clone() before modifying it."
            )
    if "output" in node.op.saves and out is not None and out._version[0] != out_version:
        raise VersionError(
            f"the output of {node.op.name} (shape {list(out.shape)}), needed for its gradient, was modified "
            "by an in-place operation; clone() it before modifying it"
        )


def fit(grad, like):
    """Sum a gradient back to `like`'s shape and give it `like`'s dtype."""
    if grad.shape != like.shape:
        grad = F.sum_to(grad, like.shape)
    if grad.dtype is not like.dtype:
        grad = F.cast(grad, like.dtype)
    return grad


def _run_hooks(hooks, grad):
    for hook in hooks or ():
        result = hook(grad)
        if result is not None:
            grad = result
    return grad


def accumulate(pending: dict, key, grad, owned=None):
    """Add `grad` to the gradient pending under `key`: in place where the engine made that buffer
    itself (`owned`: id -> tensor, kept alive so an id is never another tensor's)."""
    previous = pending.get(key)
    if previous is None:
        pending[key] = grad
    elif (
        owned is not None
        and id(previous) in owned
        and previous.dtype is grad.dtype
        and previous.shape == grad.shape
        and type(previous._data) is np.ndarray  # (host memory: a device's adds run as its kernels)
        and type(grad._data) is np.ndarray
    ):
        previous._data += grad._data
    else:
        pending[key] = previous + grad


def _add_into_region(op, attrs, x, grad, pending, key, owned) -> bool:
    """Add the gradient of a region-selecting view (`op.grad_region`) into `x`'s pending gradient
    buffer, in place: one buffer per input, however many views of it the graph took. False where
    the region does not take this gradient as it is (the vjp runs instead)."""
    if type(grad._data) is not np.ndarray:  # traced, or in a device's memory: the vjp's ops run
        return False
    buffer = pending.get(key)
    if buffer is None or id(buffer) not in owned:
        data = np.zeros(x.shape, NUMPY_DTYPE[x.dtype]) if buffer is None else np.array(buffer._data, order="C")
        candidate = Tensor._make(data, x.dtype, x.device)
    else:
        candidate = buffer
    region = op.grad_region(candidate._data, **attrs)
    if region.shape != grad.shape or grad.dtype is not x.dtype:
        return False
    region += grad._data
    if candidate is not buffer:
        owned[id(candidate)] = candidate
        pending[key] = candidate
    return True


@contextlib.contextmanager
def _autocast_off():
    """Backward ops run in the dtypes their forward ops used, as in PyTorch: autocast chose
    the forward's casts and must not cast the vjp rules' ops a second time."""
    hook, dispatch.autocast_hook = dispatch.autocast_hook, None
    try:
        yield
    finally:
        dispatch.autocast_hook = hook


# The callbacks queued during the backward pass that runs now (None outside one): see queue_callback.
_callbacks: list | None = None


def queue_callback(callback) -> None:
    """Run `callback()` once the backward pass that runs now has stored every gradient (as PyTorch's
    `Variable._execution_engine.queue_callback`): data-parallel training waits for its reductions there."""
    if _callbacks is None:
        raise RuntimeError("queue_callback can only be called during a backward pass")
    _callbacks.append(callback)


def run_backward(roots, root_grads, *, retain_graph, create_graph, capture=None):
    """Propagate gradients from `roots`.

    Without `capture`, leaf gradients accumulate into `.grad`. With `capture`
    (a list of tensors, for `autograd.grad`), their gradients are returned
    instead and no `.grad` is touched. Callbacks queued during the pass run at its end.
    """
    global _callbacks
    outer, _callbacks = _callbacks, []
    try:
        if dispatch.is_tracing():
            result = _deferred(roots, root_grads, retain_graph, create_graph, capture)
        else:
            result = _run_backward(roots, root_grads, retain_graph, create_graph, capture)
        while _callbacks:
            _callbacks.pop(0)()
        return result
    finally:
        _callbacks = outer


def _last_contributions(order) -> dict:
    """node id -> the leaves with post-accumulate-grad hooks whose gradient is whole once that node's
    rules have run (it is the last node in `order` that feeds them)."""
    last = {}
    for node in order:
        if node.inputs is None:
            continue
        for i, (x, (child, wanted)) in enumerate(zip(node.inputs, node.edges)):
            if child is None and wanted and id(x) in POST_ACCUMULATE_HOOKS and _rule(node.op, i) is not None:
                last[id(x)] = node
    finished: dict = {}
    for key, node in last.items():
        finished.setdefault(id(node), []).append(key)
    return finished


def _run_post_accumulate_hooks(leaf) -> None:
    for hook in list(POST_ACCUMULATE_HOOKS.get(id(leaf), ())):
        hook(leaf)


def _run_backward(roots, root_grads, retain_graph, create_graph, capture):
    captured_nodes = {id(t._node): t for t in capture or () if t._node is not None}
    captured_leaves = {id(t) for t in capture or () if t._node is None}
    results = {}
    pending_nodes: dict = {}
    outputs: dict = {}  # node id -> its output tensor, kept alive until the node has run
    pending_leaves: dict = {}
    leaves: dict = {}
    owned: dict = {}  # gradient buffers this backward made and may add into in place (_add_into_region)
    for root, grad in zip(roots, root_grads):
        if root._node is None:
            leaves[id(root)] = root
            accumulate(pending_leaves, id(root), grad)
        else:
            accumulate(pending_nodes, id(root._node), grad)
            outputs[id(root._node)] = root

    order = topological_order([r._node for r in roots])
    early = _last_contributions(order) if POST_ACCUMULATE_HOOKS and capture is None else None
    stored = set()
    with grad_mode.set_grad_enabled(create_graph), _autocast_off():
        for node in order:
            grad = pending_nodes.pop(id(node), None)
            out = outputs.pop(id(node), None)
            if grad is None:
                continue
            owned.pop(id(grad), None)  # handed to the vjp rules now, which may pass it on as it is
            if node.inputs is None:
                raise _freed(node)
            grad = _run_hooks(node.hooks, grad)
            retained = node.retained
            if retained is not None and capture is None:
                retained.grad = grad if retained.grad is None else retained.grad + grad
            if id(node) in captured_nodes:
                results[id(node)] = grad
            _check_versions(node, out)
            _propagate(node, out, grad, pending_nodes, pending_leaves, leaves, outputs, owned)
            if not retain_graph:
                node.inputs = None
            for key in early.pop(id(node), ()) if early else ():
                if key in pending_leaves:  # this leaf's gradient is whole: store it now
                    _finish_leaf(leaves[key], pending_leaves.pop(key), create_graph, stored)

    for key, grad in pending_leaves.items():
        leaf = leaves[key]
        if capture is not None:
            grad = _run_hooks(leaf._hooks, grad)
            if key in captured_leaves:
                results[key] = grad
        else:
            _finish_leaf(leaf, grad, create_graph, stored)
    if capture is not None:
        return [results.get(id(t._node) if t._node is not None else id(t)) for t in capture]
    return None


def _finish_leaf(leaf, grad, create_graph, stored) -> None:
    grad = _run_hooks(leaf._hooks, grad)
    if leaf.requires_grad:
        _store_leaf_grad(leaf, grad, create_graph, stored)
        _run_post_accumulate_hooks(leaf)


def _deferred(roots, root_grads, retain_graph, create_graph, capture):
    """backward() while tracing: find what the gradient reaches, as the loop above would, and hand
    out symbolic gradients that the compiler's autodiff pass computes later, once autocast's casts
    are in the graph (compiler/passes/autodiff.py runs the same vjp rules in the same order)."""
    if create_graph:
        dispatch.untraceable("a backward with create_graph=True (higher-order gradients)")
    order = topological_order([r._node for r in roots])
    reached = {id(r._node) for r in roots if r._node is not None}
    outputs = {id(r._node): r for r in roots if r._node is not None}  # as eager's loop keeps them
    leaves = {id(r): r for r in roots if r._node is None}
    for node in order:
        if id(node) not in reached:
            continue
        if node.inputs is None:
            raise _freed(node)
        if node.hooks or node.retained is not None:
            dispatch.untraceable("a gradient hook or retain_grad() on a traced tensor")
        _check_versions(node, outputs.get(id(node)))  # eager refuses what was changed in place, so must this
        for i, (x, (child, wanted)) in enumerate(zip(node.inputs, node.edges)):
            if isinstance(x, Tensor) and wanted and _rule(node.op, i) is not None:
                if child is None:
                    leaves[id(x)] = x
                else:
                    reached.add(id(child))
                    outputs[id(child)] = x
    if not retain_graph:
        for node in order:
            node.inputs = None
    if capture is not None:
        targets = [t for t in capture if (id(t._node) in reached if t._node is not None else id(t) in leaves)]
        found = dict(zip(map(id, targets), dispatch.symbolic_gradients(roots, root_grads, targets)))
        return [found.get(id(t)) for t in capture]
    targets = [leaf for leaf in leaves.values() if leaf.requires_grad]
    if any(leaf._hooks for leaf in targets):
        dispatch.untraceable("a gradient hook on a tensor that a traced backward reaches")
    stored = set()
    for leaf, grad in zip(targets, dispatch.symbolic_gradients(roots, root_grads, targets)):
        _store_leaf_grad(leaf, grad, False, stored)
    # traced, every gradient is whole at once: the hooks record their ops on the stored gradients
    for leaf in targets:
        _run_post_accumulate_hooks(leaf)
    return None


def _propagate(node, out, grad, pending_nodes, pending_leaves, leaves, outputs, owned):
    # the edges hold each input's history as it was when the op ran: an in-place op since
    # then gave the tensor a new node, which this op's gradient must not flow through; and
    # the rules see each input with the shape it had then (squeeze_ may have changed it since)
    op, attrs = node.op, node.attrs
    inputs = recorded_inputs(node)
    for i, (x, (child, wanted)) in enumerate(zip(inputs, node.edges)):
        if not isinstance(x, Tensor) or not wanted:
            continue
        if child is None:  # a leaf is keyed by itself, the tensor whose .grad it fills
            x = node.inputs[i]
        pending, key = (pending_leaves, id(x)) if child is None else (pending_nodes, id(child))
        # a region-selecting view adds its gradient into its input's buffer, unless the backward
        # itself is recorded (create_graph): then the vjp's ops must be on the tape
        if i == 0 and op.grad_region is not None and not grad_mode.is_grad_enabled():
            if _add_into_region(op, attrs, x, grad, pending, key, owned):
                if child is None:
                    leaves[id(x)] = x
                else:
                    outputs[id(child)] = x
                continue
        g = input_gradient(op, i, grad, out, inputs, attrs)
        if g is None:
            continue
        if child is None:
            leaves[id(x)] = x
        else:
            outputs[id(child)] = x
        accumulate(pending, key, g, owned)


def _rule(op, i):
    """The vjp rule for input i (a variadic op has one for all), or None: it takes no gradient."""
    return op.vjp[0] if op.variadic else op.vjp[i]


def _freed(node) -> RuntimeError:
    return RuntimeError(
        f"trying to backward through the graph a second time (at {node.op.name}); its saved "
        "tensors were freed. Pass retain_graph=True to the first backward() to keep them."
    )


def input_gradient(op, i, grad, out, inputs, attrs):
    """The gradient `op`'s vjp rule gives input i, fitted to its shape and dtype (None: it takes none)."""
    rule = _rule(op, i)
    if rule is None:
        return None
    g = rule(grad, out, *inputs, index=i, **attrs) if op.variadic else rule(grad, out, *inputs, **attrs)
    return None if g is None else fit(g, inputs[i])


def _store_leaf_grad(leaf, grad, create_graph, stored):
    if not create_graph:
        grad = grad.detach()
    if leaf.grad is None:
        # The gradient may alias another buffer (a pass-through rule hands the same
        # tensor to two leaves; a view rule hands out a view): a leaf must own its
        # .grad, since optimizers and clipping modify it in place.
        data = grad._data
        if getattr(data, "is_symbolic", False):  # traced: a buffer of its own holding the same value
            leaf.grad = Tensor._make(data.alias(), grad.dtype, grad.device)
            return
        if data.base is not None or not data.flags.writeable or id(data) in stored:
            grad = Tensor._make(data.copy(), grad.dtype, grad.device)
        stored.add(id(grad._data))
        leaf.grad = grad
    elif create_graph or leaf.grad.requires_grad:
        leaf.grad = leaf.grad + grad
    elif type(leaf.grad._data) is not np.ndarray or type(grad._data) is not np.ndarray:
        leaf.grad.add_(grad)  # traced, the in-place add is recorded like any other; on a device, its kernel
    else:
        leaf.grad._data += grad._data
        leaf.grad._version[0] += 1


def _root_grad(root, grad):
    if not root.requires_grad:
        raise RuntimeError(
            f"element 0 of tensors does not require grad and does not have a grad_fn "
            f"(shape {list(root.shape)}); did you forget requires_grad=True or run under no_grad()?"
        )
    if grad is None:
        if root.numel() != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs, but the output has shape "
                f"{list(root.shape)}; pass gradient= with a tensor of that shape"
            )
        return creation.ones_like(root)
    if not isinstance(grad, Tensor):
        grad = creation.tensor(grad, dtype=root.dtype)
    if grad.shape != root.shape:
        raise RuntimeError(
            f"gradient of shape {list(grad.shape)} does not match the output of shape {list(root.shape)}"
        )
    return grad


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
    grads = [_root_grad(t, g) for t, g in zip(tensors, grad_tensors)]
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        found = run_backward(tensors, grads, retain_graph=retain_graph, create_graph=create_graph, capture=inputs)
        for t, g in zip(inputs, found):
            if g is not None:
                _store_leaf_grad(t, g, create_graph, set())
        return
    run_backward(tensors, grads, retain_graph=retain_graph, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, returned rather than stored in `.grad`."""
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError(f"an input of shape {list(t.shape)} does not require grad")
    grads = [_root_grad(t, g) for t, g in zip(outputs, grad_outputs)]
    if retain_graph is None:
        retain_graph = create_graph
    found = run_backward(outputs, grads, retain_graph=retain_graph, create_graph=create_graph, capture=inputs)
    for t, g in zip(inputs, found):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"one of the inputs (shape {list(t.shape)}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
    return tuple(found)
