"""Fit a small two-layer network to a noisy sine with genesis autograd (eager mode).

Run: python examples/quickstart.py
"""

import math

import genesis


def main(steps: int = 300, lr: float = 0.05) -> float:
    genesis.manual_seed(0)
    x = genesis.linspace(-math.pi, math.pi, 256).reshape(-1, 1)
    y = genesis.sin(x) + genesis.randn(256, 1) * 0.05

    w1 = (genesis.randn(1, 32) * 0.5).requires_grad_()
    b1 = genesis.zeros(32, requires_grad=True)
    w2 = (genesis.randn(32, 1) * 0.2).requires_grad_()
    b2 = genesis.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]

    for step in range(steps + 1):
        prediction = genesis.tanh(x @ w1 + b1) @ w2 + b2
        loss = ((prediction - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with genesis.no_grad():
            for p in params:
                p.sub_(p.grad * lr)
        if step % 50 == 0:
            print(f"step {step:4d}  loss {loss.item():.5f}")
    return loss.item()


if __name__ == "__main__":
    final = main()
    print(f"final loss {final:.5f} (noise floor ~0.0025)")
