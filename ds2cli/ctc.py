"""CTC helpers shared by training, decoding and alignment."""
from __future__ import annotations

import torch


def greedy_ids(log_probs: torch.Tensor) -> list[int]:
    """Best path: argmax per frame, repeats merged, blanks (0) removed. log_probs (T, V)"""
    best = log_probs.argmax(-1).tolist()
    out, prev = [], 0
    for i in best:
        if i != prev and i != 0:
            out.append(i)
        prev = i
    return out


def greedy_text(log_probs: torch.Tensor, tokenizer) -> str:
    return tokenizer.decode(greedy_ids(log_probs))


def min_ctc_frames(targets: list[int]) -> int:
    """Fewest frames that can emit `targets` under CTC: one per label plus a blank between repeats."""
    return len(targets) + sum(1 for a, b in zip(targets, targets[1:]) if a == b)
