"""The everyday training loop end to end: autocast, GradScaler, unscale_, clipping, a scheduler, checkpoints.

The same loop runs in genesis and PyTorch (fp32, where both are exact enough
to compare); with fp16 autocast, an interrupted run resumed from a checkpoint
must equal an uninterrupted one bit for bit; and the digits demo must reach
its accuracy target and resume.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import genesis
from genesis import nn
from genesis.amp import GradScaler, autocast
from genesis.optim import AdamW
from genesis.optim.lr_scheduler import CosineAnnealingLR

ROOT = Path(__file__).resolve().parent.parent


def batches(count=12, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((16, 20)).astype(np.float32), rng.integers(0, 5, 16)) for _ in range(count)]


def make_genesis():
    genesis.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 5))
    optimizer = AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    return model, optimizer, CosineAnnealingLR(optimizer, T_max=12)


def genesis_step(model, optimizer, scheduler, scaler, x, y, amp_dtype):
    optimizer.zero_grad()
    with autocast(enabled=amp_dtype is not None, dtype=amp_dtype or genesis.float16):
        loss = nn.functional.cross_entropy(model(genesis.tensor(x)), genesis.tensor(y))
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.item()


def test_fp32_loop_matches_pytorch():
    model, optimizer, scheduler = make_genesis()
    reference = torch.nn.Sequential(
        torch.nn.Linear(20, 32), torch.nn.GELU(), torch.nn.LayerNorm(32), torch.nn.Linear(32, 5)
    )
    reference.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    t_optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.01)
    t_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(t_optimizer, T_max=12)
    scaler, t_scaler = GradScaler(enabled=False), torch.amp.GradScaler("cpu", enabled=False)
    for x, y in batches():
        loss = genesis_step(model, optimizer, scheduler, scaler, x, y, None)
        t_optimizer.zero_grad()
        t_loss = torch.nn.functional.cross_entropy(reference(torch.tensor(x)), torch.tensor(y))
        t_scaler.scale(t_loss).backward()
        t_scaler.unscale_(t_optimizer)
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        t_scaler.step(t_optimizer)
        t_scaler.update()
        t_scheduler.step()
        assert loss == pytest.approx(t_loss.item(), rel=1e-4)
    for (name, p), t in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_resuming_amp_training_from_a_checkpoint_is_bit_exact(tmp_path):
    data = batches()
    path = tmp_path / "state.safetensors"

    def run(stop_at=None, resume=False):
        model, optimizer, scheduler = make_genesis()
        scaler = GradScaler(init_scale=2.0**10, growth_interval=3)
        start = 0
        if resume:
            state = genesis.load_checkpoint(path)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            start = state["step"]
        losses = []
        for step in range(start, len(data)):
            if step == stop_at:
                genesis.save_checkpoint(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "step": step,
                    },
                    path,
                )
                return model, losses
            losses.append(genesis_step(model, optimizer, scheduler, scaler, *data[step], genesis.float16))
        return model, losses

    straight, all_losses = run()
    _, first_half = run(stop_at=5)
    resumed, second_half = run(resume=True)
    assert first_half + second_half == all_losses
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy()), name


def load_demo():
    spec = importlib.util.spec_from_file_location("train_digits", ROOT / "examples" / "train_digits.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_digits"] = module
    spec.loader.exec_module(module)
    return module


def test_digits_demo_reaches_95_percent_and_resumes(tmp_path, capsys):
    demo = load_demo()
    checkpoint = tmp_path / "digits.safetensors"
    accuracy = demo.main(["--epochs", "12", "--checkpoint", str(checkpoint), "--compile"])
    assert accuracy >= 0.95
    resumed = demo.main(["--epochs", "13", "--checkpoint", str(checkpoint), "--resume", "--compile"])
    assert "resumed from" in capsys.readouterr().out
    assert resumed >= 0.95
