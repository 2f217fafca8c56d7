"""A character-level GPT trained on Shakespeare, written as a PyTorch user would write it.

Token and position embeddings, a stack of pre-norm transformer blocks (causal
self-attention through `scaled_dot_product_attention(is_causal=True)`, a GELU
MLP, dropout), a final LayerNorm and a linear head; AdamW; cross-entropy on the
next character. It prints the training loss as it goes, the validation loss
at the end, and a sample of generated text a person can read. `--compile`
compiles the training step with `genesis.compile` (same numbers as eager).

The text is examples/data/tiny_shakespeare.txt (see examples/data/README.md).
Sampling draws each character with `genesis.multinomial` from the softmax of
the last position's logits, with a seeded `genesis.Generator`.

Run:    python examples/char_gpt.py [--steps 2000] [--compile] [--sample-length 500]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

import genesis
from genesis import nn
from genesis.nn import functional as F

DATA = Path(__file__).resolve().parent / "data" / "tiny_shakespeare.txt"


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x):
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        # (batch, heads, tokens, head width): every head attends over the tokens on its own
        q, k, v = (t.view(batch, tokens, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        y = y.transpose(1, 2).reshape(batch, tokens, width)
        return self.resid_dropout(self.proj(y))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    def __init__(self, vocab: int, block_size: int, width: int, layers: int, heads: int, dropout: float):
        super().__init__()
        self.block_size = block_size
        self.token_embedding = nn.Embedding(vocab, width)
        self.position_embedding = nn.Embedding(block_size, width)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*[Block(width, heads, dropout) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, tokens):
        positions = genesis.arange(tokens.shape[1])
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        return self.head(self.ln_f(self.blocks(x)))


class Text:
    """The characters of a text as integer ids, split 90/10 into training and validation."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        ids = np.array([self.index[c] for c in text], dtype=np.int64)
        cut = int(0.9 * len(ids))
        self.train, self.val = ids[:cut], ids[cut:]

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def batch(self, split: str, batch_size: int, block_size: int, rng: np.random.Generator):
        """Random windows of block_size characters and, for targets, the same windows one character on."""
        ids = self.train if split == "train" else self.val
        starts = rng.integers(0, len(ids) - block_size - 1, batch_size)
        x = np.stack([ids[s : s + block_size] for s in starts])
        y = np.stack([ids[s + 1 : s + block_size + 1] for s in starts])
        return genesis.tensor(x), genesis.tensor(y)


def generate(model: CharGPT, context: list[int], length: int, generator, temperature: float = 1.0) -> list[int]:
    """Extend `context` by `length` characters, each drawn from the model's next-character distribution."""
    model.eval()
    ids = list(context)
    with genesis.no_grad():
        for _ in range(length):
            window = genesis.tensor([ids[-model.block_size :]])
            logits = model(window)[0, -1] / temperature
            probabilities = F.softmax(logits, dim=-1)
            ids.append(genesis.multinomial(probabilities, 1, generator=generator).item())
    model.train()
    return ids


def progress_bar(iterable, desc: str):
    """tqdm's bar where tqdm is installed (the "demo" extra), else the bare iterable."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="train a character-level GPT on Shakespeare")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--sample-length", type=int, default=500)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--compile", action="store_true", help="compile the training step with genesis.compile")
    args = parser.parse_args(argv)

    genesis.manual_seed(args.seed)
    text = Text(args.data.read_text(encoding="utf-8"))
    rng = np.random.default_rng(args.seed)
    model = CharGPT(len(text.chars), args.block_size, args.width, args.layers, args.heads, args.dropout)
    optimizer = genesis.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    print(f"{len(text.chars)} characters, {sum(p.numel() for p in model.parameters())} parameters")

    def train_step(x, y):
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    if args.compile:
        train_step = genesis.compile(train_step)
    losses, started = [], time.perf_counter()
    bar = progress_bar(range(args.steps), desc="training")
    for step in bar:
        loss = train_step(*text.batch("train", args.batch_size, args.block_size, rng)).item()
        losses.append(loss)
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"loss {loss:.3f}")
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            print(f"step {step + 1:5d}  loss {loss:.4f}  {time.perf_counter() - started:.1f}s")

    model.eval()
    with genesis.no_grad():
        x, y = text.batch("val", args.batch_size, args.block_size, rng)
        logits = model(x)
        val_loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1)).item()
    model.train()
    print(f"validation loss {val_loss:.4f} (a uniform guess: {math.log(len(text.chars)):.4f})")
    generator = genesis.Generator().manual_seed(args.seed)
    sample = text.decode(generate(model, [text.index["\n"]], args.sample_length, generator))
    print("sample:\n" + sample)
    return {"losses": losses, "val_loss": val_loss, "sample": sample, "vocab": len(text.chars)}


if __name__ == "__main__":
    main()
