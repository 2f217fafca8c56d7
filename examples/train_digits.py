"""Train a small network on scikit-learn's bundled digits (8x8 images, 10 classes).

Shows the everyday training API: DataLoader, a Module, AdamW, autocast with a
GradScaler, gradient clipping, a cosine learning-rate schedule, and a
checkpoint each epoch that `--resume` continues from exactly. The training
step runs eagerly, as in PyTorch; `--compile` compiles it with `genesis.compile`
into one program (both give the same numbers; `GENESIS_DUMP=dir` writes what
the compiler made of it). A tqdm bar shows the progress where tqdm is installed
(the "demo" extra).

Run:    python examples/train_digits.py [--epochs 30] [--resume] [--amp bf16|fp16|off] [--compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import genesis
from genesis import nn
from genesis.amp import GradScaler, autocast
from genesis.data import DataLoader, TensorDataset
from genesis.optim import AdamW
from genesis.optim.lr_scheduler import CosineAnnealingLR


def load_digits_split(seed: int = 0):
    """Digits as float32 tensors in [0, 1], split 80/20 with a fixed permutation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("this demo needs scikit-learn for its bundled digits data: pip install -e '.[demo]'")
    digits = load_digits()
    images = genesis.tensor(digits.images, dtype=genesis.float32).reshape(-1, 1, 8, 8) / 16.0
    labels = genesis.tensor(digits.target, dtype=genesis.int64)
    order = genesis.randperm(len(labels), generator=genesis.Generator().manual_seed(seed))
    cut = int(0.8 * len(labels))
    train, test = order[:cut], order[cut:]
    return (images[train], labels[train]), (images[test], labels[test])


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 128),
        nn.GELU(),
        nn.Dropout(0.1),
        nn.Linear(128, 10),
    )


class PlainBar:
    """The part of tqdm's interface this demo uses, for machines without tqdm: one line a batch."""

    def __init__(self, iterable, desc: str):
        self.iterable, self.desc, self.postfix = iterable, desc, ""

    def __iter__(self):
        for done, item in enumerate(self.iterable, 1):
            yield item
            print(f"\r{self.desc} {done:4d}/{len(self.iterable)} {self.postfix}", end="", flush=True)
        print()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text


def progress_bar(iterable, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainBar(iterable, desc)
    return tqdm(iterable, desc=desc, leave=False)


def accuracy(model: nn.Module, images, labels) -> float:
    model.eval()
    with genesis.no_grad():
        predicted = model(images).argmax(dim=1)
    model.train()
    return (predicted == labels).float().mean().item()


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description="train a small CNN on the digits dataset")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--amp", choices=["bf16", "fp16", "off"], default="bf16")
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/digits.safetensors"))
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--compile", action="store_true", help="compile the training step with genesis.compile")
    args = parser.parse_args(argv)

    genesis.manual_seed(0)
    (train_x, train_y), (test_x, test_y) = load_digits_split()
    loader = DataLoader(
        TensorDataset(train_x, train_y),
        batch_size=args.batch_size,
        shuffle=True,
        generator=genesis.Generator().manual_seed(1),
    )
    model = make_model()
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    scheduler = CosineAnnealingLR(optimizer, T_max=args.epochs * len(loader))
    amp_dtype = {"bf16": genesis.bfloat16, "fp16": genesis.float16, "off": None}[args.amp]
    scaler = GradScaler(enabled=amp_dtype is genesis.float16)  # bf16 has fp32's range: no scaling needed
    criterion = nn.CrossEntropyLoss(label_smoothing=0.05)

    def train_step(images, labels):
        optimizer.zero_grad()
        with autocast(enabled=amp_dtype is not None, dtype=amp_dtype):
            loss = criterion(model(images), labels)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
        return loss

    if args.compile:  # one graph: forward, backward, clipping, scaler and AdamW, fused into kernels
        train_step = genesis.compile(train_step)
    args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    start_epoch = 0
    if args.resume and args.checkpoint.exists():
        state = genesis.load_checkpoint(args.checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        genesis.set_rng_state(state["rng"])
        loader.generator.set_state(state["loader_rng"])
        start_epoch = state["epoch"] + 1
        print(f"resumed from {args.checkpoint} after epoch {start_epoch}")

    for epoch in range(start_epoch, args.epochs):
        started = time.perf_counter()
        bar = progress_bar(loader, desc=f"epoch {epoch + 1:3d}/{args.epochs}")
        for images, labels in bar:
            loss = train_step(images, labels)
            scheduler.step()
            bar.set_postfix_str(f"loss {loss.item():.4f}")
        test_accuracy = accuracy(model, test_x, test_y)
        print(
            f"epoch {epoch + 1:3d}/{args.epochs}  loss {loss.item():.4f}  test accuracy {test_accuracy:.3f}  "
            f"lr {scheduler.get_last_lr()[0]:.2e}  {time.perf_counter() - started:.1f}s"
        )
        genesis.save_checkpoint(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": genesis.get_rng_state(),
                "loader_rng": loader.generator.get_state(),
            },
            args.checkpoint,
        )

    final = accuracy(model, test_x, test_y)
    print(f"final test accuracy {final:.3f}")
    return final


if __name__ == "__main__":
    main()
