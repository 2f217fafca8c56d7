"""Loss scaling: write out GradScaler's markers.

A traced GradScaler (amp/grad_scaler.py) records its steps as markers: the
multiply of the loss by the scale (`loss_scale`), the finite check of the
scaled gradients (`found_inf`), their unscaling (`unscale`), the select that
keeps the old parameters and state when a gradient was not finite
(`skip_update`: the skipped step, without a host branch), and the scale's
update (`scale_update`, two results: the scale and the growth tracker). This
pass splices in each marker's composite, GradScaler's own arithmetic. It runs
before autodiff, which then differentiates through the multiply by the scale.
"""

from __future__ import annotations

from genesis.compiler.ir import Graph
from genesis.compiler.passes.inline import inline_markers


def loss_scaling(graph: Graph) -> Graph:
    return inline_markers(graph, "loss_scaling")
