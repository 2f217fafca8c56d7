"""DCGAN's alternating training, as in PyTorch's dcgan example, against PyTorch.

The example's networks at a smaller scale (16x16 images, 8 latents, 4 to 16
channels): a generator of ConvTranspose2d, BatchNorm2d and ReLU ending in Tanh,
and a discriminator of Conv2d, BatchNorm2d and in-place LeakyReLU(0.2) ending in
Sigmoid, initialised by the example's weights_init. Each step trains D on a
real batch and on `fake.detach()`, then G through D with real labels; BCELoss;
two Adams with betas (0.5, 0.999). The latent noise comes from the host, so
both libraries see the same numbers.
"""

import numpy as np
import pytest
import torch
from twins import as_pair, assert_states_close, copy_torch_state, step_function

import genesis

LATENT, GEN_WIDTH, DISC_WIDTH, CHANNELS, BATCH, STEPS = 8, 4, 4, 3, 8, 4


def weights_init(lib, module):
    name = type(module).__name__
    if "Conv" in name:
        lib.nn.init.normal_(module.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        lib.nn.init.normal_(module.weight, 1.0, 0.02)
        lib.nn.init.zeros_(module.bias)


def make_generator(nn):
    return nn.Sequential(
        nn.ConvTranspose2d(LATENT, GEN_WIDTH * 4, 4, 1, 0, bias=False),  # 4x4
        nn.BatchNorm2d(GEN_WIDTH * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(GEN_WIDTH * 4, GEN_WIDTH * 2, 4, 2, 1, bias=False),  # 8x8
        nn.BatchNorm2d(GEN_WIDTH * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(GEN_WIDTH * 2, CHANNELS, 4, 2, 1, bias=False),  # 16x16
        nn.Tanh(),
    )


def make_discriminator(nn):
    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(CHANNELS, DISC_WIDTH, 4, 2, 1, bias=False),  # 8x8
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(DISC_WIDTH, DISC_WIDTH * 2, 4, 2, 1, bias=False),  # 4x4
                nn.BatchNorm2d(DISC_WIDTH * 2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(DISC_WIDTH * 2, 1, 4, 1, 0, bias=False),  # 1x1
                nn.Sigmoid(),
            )

        def forward(self, x):
            return self.main(x).view(-1, 1).squeeze(1)

    return Discriminator()


def training_step(lib, net_g, net_d):
    criterion = lib.nn.BCELoss()
    optimizer_d = lib.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_g = lib.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(real, noise):
        # (1) D: maximise log(D(x)) + log(1 - D(G(z)))
        net_d.zero_grad()
        label = lib.full((real.shape[0],), 1.0, dtype=real.dtype)
        error_d_real = criterion(net_d(real), label)
        error_d_real.backward()
        fake = net_g(noise)
        label.fill_(0.0)
        error_d_fake = criterion(net_d(fake.detach()), label)
        error_d_fake.backward()
        optimizer_d.step()
        # (2) G: maximise log(D(G(z))), through the discriminator just updated
        net_g.zero_grad()
        label.fill_(1.0)
        error_g = criterion(net_d(fake), label)
        error_g.backward()
        optimizer_g.step()
        return error_d_real + error_d_fake, error_g

    return step


def batches():
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        real = np.tanh(rng.standard_normal((BATCH, CHANNELS, 16, 16))).astype(np.float32)
        yield real, rng.standard_normal((BATCH, LATENT, 1, 1)).astype(np.float32)


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_dcgan_trains_as_in_pytorch(mode):
    torch.manual_seed(0)
    t_g, t_d = make_generator(torch.nn), make_discriminator(torch.nn)
    t_g.apply(lambda m: weights_init(torch, m))
    t_d.apply(lambda m: weights_init(torch, m))
    g_g, g_d = make_generator(genesis.nn), make_discriminator(genesis.nn)
    copy_torch_state(g_g, t_g)
    copy_torch_state(g_d, t_d)
    t_step = training_step(torch, t_g, t_d)
    g_step = step_function(mode, training_step(genesis, g_g, g_d))
    for i, (real, noise) in enumerate(batches()):
        (g_real, t_real), (g_noise, t_noise) = as_pair(real), as_pair(noise)
        expected = [t.item() for t in t_step(t_real, t_noise)]
        got = [t.item() for t in g_step(g_real, g_noise)]
        # means of 8 log-terms, after BatchNorm's statistics over 8 x 16 values: float32 to a few ulps
        assert got == pytest.approx(expected, rel=1e-5), f"step {i}"
    # Adam moves a weight by lr (2e-4) or less a step; BatchNorm's running statistics follow the batches
    assert_states_close(g_g, t_g, rtol=1e-4, atol=STEPS * 2e-4 * 1e-3)
    assert_states_close(g_d, t_d, rtol=1e-4, atol=STEPS * 2e-4 * 1e-3)
    if mode == "compiled":
        assert g_step.stats["fallbacks"] == []
