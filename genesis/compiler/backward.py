"""A compiled backward: split the joint forward+backward graph, and hang it on the autograd tape.

When a compiled function's results need gradients, tracing asks for them too
(`autograd.grad` on the symbolic outputs, with a graph input for each
output's incoming gradient), and the autodiff pass writes out the vjp rules,
so forward and backward land in one joint graph. `split` cuts it in two:

- the forward graph computes the results, plus the forward values the
  backward reads ("saved": activations, masks, inputs);
- the backward graph takes the saved values and the incoming gradients and
  returns the gradient of every differentiable input.

Each is optimised and compiled like any program. At call time, each result
gets one autograd node whose rule runs the compiled backward once and hands
out the gradient for each input; eager autograd cannot tell it from any other
node. The compiled backward is not itself differentiable: a gradient asked for
with `create_graph=True` comes from the joint graph interpreted once more with
the eager kernels on the call's own input tensors (`Differentiable`), so the
tape records every op of forward and backward and a second derivative
follows, as eager's would. That needs the inputs the gradients read as they
were: where the function or the user has changed one in place since the call,
it raises, as eager autograd does for a saved tensor.
"""

from __future__ import annotations

import networkx as nx

from genesis import grad_mode
from genesis.autograd.engine import VersionError
from genesis.compiler import interpret
from genesis.compiler.ir import INPUT, Graph
from genesis.creation import zeros
from genesis.ops.op import Kind, Op
from genesis.tape import Node


def subgraph(graph: Graph, keep: set, inputs: list, outputs: list) -> Graph:
    """A new graph of the nodes in `keep`, where each name in `inputs` becomes an input node."""
    part = Graph()
    for name in inputs:
        node = graph[name]
        part.add_input(node.shape, node.dtype, name=name, source=node.source)
    for node in graph.nodes():
        if node.name in keep and node.name not in inputs and node.op != INPUT:
            part.add(
                node.op, node.inputs, node.attrs, shape=node.shape, dtype=node.dtype, source=node.source, name=node.name
            )
    part.outputs = list(outputs)
    part.next_name = graph._next_index()
    return part


def split(graph: Graph, n_forward_outputs: int, grad_inputs: list):
    """(forward graph, backward graph, saved names) from a joint graph.

    The joint graph's outputs are the forward outputs first, then one gradient
    per differentiated input; `grad_inputs` are the inputs that carry the
    incoming gradients (read by the backward only)."""
    forward_outputs = graph.outputs[:n_forward_outputs]
    gradients = graph.outputs[n_forward_outputs:]
    primal_inputs = [name for name in graph.inputs if name not in grad_inputs]
    forward_nodes = set(forward_outputs) | set(primal_inputs)
    for name in forward_outputs:
        forward_nodes |= nx.ancestors(graph.nx, name)
    backward_nodes = set(gradients)
    for name in gradients:
        backward_nodes |= nx.ancestors(graph.nx, name)
    backward_nodes -= forward_nodes
    backward_nodes -= set(grad_inputs)
    saved = []
    for name in sorted(backward_nodes | set(gradients), key=_order(graph)):
        reads = graph[name].value_inputs() if name in backward_nodes else (name,)
        for producer in reads:
            if producer in forward_nodes and producer not in saved:
                saved.append(producer)
    forward = subgraph(graph, forward_nodes, primal_inputs, forward_outputs + saved)
    backward = subgraph(graph, backward_nodes | set(saved) | set(grad_inputs), saved + list(grad_inputs), gradients)
    return forward, backward, saved


def _order(graph):
    position = {node.name: i for i, node in enumerate(graph.nodes())}
    return position.__getitem__


class Differentiable:
    """Gradients of a compiled function that are themselves differentiable (`create_graph=True`):
    the joint graph run by the eager kernels with grad mode on. `joint`'s inputs are the forward
    program's inputs followed by one incoming gradient per differentiable output; its outputs, the
    `n_forward` results and then the gradients."""

    def __init__(self, joint: Graph, n_forward: int, forward_inputs: list, grad_inputs: list):
        self.joint = joint
        self.n_forward = n_forward
        read = set()
        for name in joint.outputs[n_forward:]:
            read |= nx.ancestors(joint.nx, name) | {name}
        position = {name: k for k, name in enumerate(forward_inputs)}
        incoming = {name: k for k, name in enumerate(grad_inputs)}
        # per joint input: ("input", the forward call's input k) or ("incoming", gradient k)
        self.sources = [("input", position[n]) if n in position else ("incoming", incoming[n]) for n in joint.inputs]
        self.read = [position[name] for name in forward_inputs if name in read]  # inputs the gradients read

    def gradients(self, inputs, versions, incoming_all) -> list:
        """`versions`: those of the `read` inputs before the call."""
        for k, version in zip(self.read, versions):
            if inputs[k]._version[0] != version:
                raise VersionError(
                    "one of the variables needed for gradient computation has been modified by an inplace "
                    "operation: an input of a compiled function, differentiated with create_graph=True"
                )
        values = [inputs[k] if kind == "input" else incoming_all[k] for kind, k in self.sources]
        with grad_mode.enable_grad():
            outputs = interpret.run(self.joint, values)
        return outputs[self.n_forward :]


class BackwardCall:
    """The compiled backward of one forward call: its saved values, run once per incoming gradient."""

    def __init__(self, executor, saved, output_metas, input_count, again=None):
        self.executor = executor
        self.saved = saved
        self.output_metas = output_metas  # (shape, dtype) of each differentiable output
        self.input_count = input_count
        self.again = again  # (Differentiable, the call's inputs, the read ones' versions before it): create_graph
        self._last = (None, None)  # (the incoming gradient, the gradients it gave)

    def gradient(self, output: int, incoming, index: int):
        create_graph = grad_mode.is_grad_enabled()
        if create_graph and self.again is None:
            raise NotImplementedError(
                "higher-order gradients (create_graph=True) through this compiled function are not "
                "supported; differentiate the eager function instead"
            )
        key, grads = self._last
        if key is not incoming or create_graph:
            incoming_all = [
                incoming if k == output else zeros(shape, dtype=dtype, device=incoming.device)
                for k, (shape, dtype) in enumerate(self.output_metas)
            ]
            if create_graph:
                differentiable, inputs, versions = self.again
                return differentiable.gradients(inputs, versions, incoming_all)[index]
            grads = self.executor(self.saved + incoming_all)
            self._last = (incoming, grads)
        return grads[index]


def _compiled_rule(g, out, *inputs, index, call, output, slots):
    slot = slots[index]
    return None if slot is None else call.gradient(output, g, slot)


def _no_kernel(*args, **kwargs):
    raise RuntimeError("a compiled function's node only runs backward")


COMPILED_FUNCTION = Op(
    name="compiled_function",
    kind=Kind.OPAQUE,
    kernel=_no_kernel,
    shape=_no_kernel,
    dtype=_no_kernel,
    vjp=(_compiled_rule,),
    saves=frozenset(),
    variadic=True,
)


def _refuse(g, out, *inputs, index, why):
    raise VersionError(why)


# the node of a compiled function's results whose backward eager would refuse (see program.py)
REFUSED_BACKWARD = Op(
    name="refused_backward",
    kind=Kind.OPAQUE,
    kernel=_no_kernel,
    shape=_no_kernel,
    dtype=_no_kernel,
    vjp=(_refuse,),
    saves=frozenset(),
    variadic=True,
)


def attach(results, call: BackwardCall, inputs: list, slots: list, every_input: list = ()) -> None:
    """Give each differentiable result a node that runs `call`; `slots[i]` is input i's gradient index.
    A result that is one of the call's inputs (`every_input`, those without gradients too) is left as
    it is: the user's own tensor, whose history (or none) is eager's."""
    passed_through = {id(t) for t in (*inputs, *every_input)}
    for k, result in enumerate(results):
        if id(result) in passed_through:
            continue  # an input returned as it is: its gradient reaches it without this node
        result._node = Node(COMPILED_FUNCTION, tuple(inputs), {"call": call, "output": k, "slots": slots}, None)
        result.requires_grad = True
