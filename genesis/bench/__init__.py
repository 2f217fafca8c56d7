"""Benchmarks that ship with genesis: `python -m genesis.bench` runs them all and writes JSON, a
markdown table and plots.

Groups: `fusion` (single fused functions, eager against compiled, with the bytes and flops each
moves, for a roofline against the machine's measured copy bandwidth and GEMM peak), `train`
(whole training steps, with compile times cold and warm, kernels and peak memory per step) and
`eager` (per-op overhead against numpy and PyTorch). Every case times its variants in the same
interleaved rounds (`timing.measure`), PyTorch's included, so a slow spell of the machine falls
on all of them. The scripts in `benchmarks/` run one group each with their own printouts. This
package sits above the rest of genesis and nothing in genesis imports it.
"""
