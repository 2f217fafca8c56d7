"""Clipping: write out clip_grad_norm_'s markers.

A traced `nn.utils.clip_grad_norm_` records the total norm of the gradients
(`grad_norm`) and the clipping coefficient min(max_norm / (norm + 1e-6), 1)
(`clip_coefficient`) as markers; the multiplies of the gradients by the
coefficient are ordinary in-place ops that fusion puts into the optimizer's
update. This pass splices in the norm reduction and the coefficient,
clipping's own arithmetic.
"""

from __future__ import annotations

from genesis.compiler.ir import Graph
from genesis.compiler.passes.inline import inline_markers


def clipping(graph: Graph) -> Graph:
    return inline_markers(graph, "clipping")
