"""A variational autoencoder trained as in PyTorch's VAE example, against PyTorch.

The network of pytorch/examples' vae (fc1, then fc21/fc22 for the mean and
log-variance, the reparameterisation, fc3 and fc4 with a sigmoid), smaller
(images of 14x14, a hidden width of 64, 8 latents) so that a step takes
milliseconds. The noise of the reparameterisation is drawn once per step on
the host and handed to both libraries, so the runs are deterministic. The loss
is the example's: binary cross-entropy summed over the batch plus the KL
divergence; Adam with lr 1e-3. Eager and compiled genesis both follow PyTorch
step by step.
"""

import numpy as np
import pytest
import torch
from twins import as_pair, assert_states_close, copy_torch_state, step_function

import genesis

PIXELS, HIDDEN, LATENT, BATCH, STEPS = 14 * 14, 64, 8, 16, 6


def make_vae(lib):
    nn, F = lib.nn, lib.nn.functional

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(PIXELS, HIDDEN)
            self.fc21 = nn.Linear(HIDDEN, LATENT)
            self.fc22 = nn.Linear(HIDDEN, LATENT)
            self.fc3 = nn.Linear(LATENT, HIDDEN)
            self.fc4 = nn.Linear(HIDDEN, PIXELS)

        def encode(self, x):
            hidden = F.relu(self.fc1(x))
            return self.fc21(hidden), self.fc22(hidden)

        def reparameterize(self, mu, logvar, eps):
            return mu + eps * lib.exp(0.5 * logvar)

        def decode(self, z):
            return lib.sigmoid(self.fc4(F.relu(self.fc3(z))))

        def forward(self, x, eps):
            mu, logvar = self.encode(x.view(-1, PIXELS))
            return self.decode(self.reparameterize(mu, logvar, eps)), mu, logvar

    return VAE()


def vae_loss(lib, recon, x, mu, logvar):
    bce = lib.nn.functional.binary_cross_entropy(recon, x.view(-1, PIXELS), reduction="sum")
    kld = -0.5 * lib.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def training_step(lib, model, optimizer):
    def step(x, eps):
        optimizer.zero_grad()
        recon, mu, logvar = model(x, eps)
        loss = vae_loss(lib, recon, x, mu, logvar)
        loss.backward()
        optimizer.step()
        return loss

    return step


def batches():
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        # binarised images, as MNIST is nearly, and the reparameterisation's noise
        images = (rng.random((BATCH, 1, 14, 14)) < 0.3).astype(np.float32)
        yield images, rng.standard_normal((BATCH, LATENT)).astype(np.float32)


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_vae_trains_as_in_pytorch(mode):
    torch.manual_seed(0)
    t_model, g_model = make_vae(torch), make_vae(genesis)
    copy_torch_state(g_model, t_model)
    t_step = training_step(torch, t_model, torch.optim.Adam(t_model.parameters(), lr=1e-3))
    g_step = step_function(mode, training_step(genesis, g_model, genesis.optim.Adam(g_model.parameters(), lr=1e-3)))
    losses = []
    for images, noise in batches():
        (g_x, t_x), (g_eps, t_eps) = as_pair(images), as_pair(noise)
        expected, got = t_step(t_x, t_eps).item(), g_step(g_x, g_eps).item()
        losses.append(got)
        # a sum over 16 x 196 terms in float32, its parts in another order than PyTorch's
        assert got == pytest.approx(expected, rel=2e-5), f"step {len(losses)}"
    assert losses[-1] < losses[0]  # it learns
    # Adam moves each parameter by about lr a step whatever the gradient's size, so float32 differences
    # in the gradients shift parameters by a small part of lr per step at most
    assert_states_close(g_model, t_model, rtol=1e-4, atol=STEPS * 1e-3 * 1e-3)
    if mode == "compiled":
        assert g_step.stats["fallbacks"] == []
