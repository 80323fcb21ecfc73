"""NTM memory addressing (Graves et al. 2014, §3.3), batched over sequences and heads.

Every function works on a whole batch of heads at once: shapes are (B, H, ...) with B sequences
and H heads, memory (B, N, M) with N rows of width M. The four addressing steps are separate
pure functions so each can be tested against a plain reference; `address` chains them.
"""
from __future__ import annotations

import torch

# Cosine similarity is undefined for a zero vector; this floor on |k|^2 |M(i)|^2 keeps it finite
# (and its gradient NaN-free). It is far below the initial memory's 20 * 1e-12 per row.
COSINE_EPS = 1e-16
# Sharpening runs in log space; this floor keeps log(0) finite for weights that underflowed.
SHARPEN_EPS = 1e-12


def content_weights(memory: torch.Tensor, keys: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Step 1, content addressing: softmax over rows of beta * cosine(key, row).

    memory (B, N, M), keys (B, H, M), beta (B, H, 1) >= 0 -> weights (B, H, N), each summing to 1.
    """
    dot = torch.bmm(keys, memory.transpose(1, 2))  # (B, H, N); bmm: fewer ops than matmul
    # |k|^2 |M(i)|^2 from sums of squares: a cheaper backward than torch.norm (fewer ops per step).
    sq_norms = (keys * keys).sum(-1, keepdim=True) * (memory * memory).sum(-1).unsqueeze(1)
    return torch.softmax(beta * dot * torch.rsqrt(sq_norms + COSINE_EPS), dim=-1)


def interpolate(w_content: torch.Tensor, w_prev: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Step 2: g * w_content + (1 - g) * w_prev. weights (B, H, N), gate (B, H, 1) in (0, 1)."""
    return torch.lerp(w_prev, w_content, gate)


def shift_index(n: int, k: int) -> torch.Tensor:
    """Gather index (N, 2k+1) for `shift`: index[i, j] = (i - d_j) mod N for shifts d_j = -k..k."""
    return (torch.arange(n).unsqueeze(1) - torch.arange(-k, k + 1).unsqueeze(0)) % n


def shift(w: torch.Tensor, s: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """Step 3, circular convolution: out(i) = sum_j w(j) s(i - j), indices mod N.

    w (B, H, N); s (B, H, 2k+1), a distribution over the shifts -k..k in that order;
    index: shift_index(N, k), passed in to avoid rebuilding it every step.
    Returns (B, H, N). Shift +1 moves the weighting one row forward (like torch.roll(w, 1)).
    """
    if index is None:
        index = shift_index(w.shape[-1], s.shape[-1] // 2)
    windows = w[..., index]  # (B, H, N, 2k+1): windows[i, j] = w(i - d_j), one gather op
    return (windows * s.unsqueeze(-2)).sum(-1)


def sharpen(w: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Step 4: w^gamma / sum(w^gamma), computed as softmax(gamma * log w) for stability.

    w (B, H, N), gamma (B, H, 1) >= 1 -> (B, H, N).
    """
    return torch.softmax(gamma * torch.log(w + SHARPEN_EPS), dim=-1)


def address(memory: torch.Tensor, w_prev: torch.Tensor, keys: torch.Tensor, beta: torch.Tensor,
            gate: torch.Tensor, s: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """All four steps: content, interpolation, shift, sharpening. Shapes as above -> (B, H, N)."""
    w = interpolate(content_weights(memory, keys, beta), w_prev, gate)
    return sharpen(shift(w, s), gamma)


def read(memory: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """r = sum_i w(i) M(i). memory (B, N, M), w (B, H, N) -> read vectors (B, H, M)."""
    return torch.bmm(w, memory)


def write(memory: torch.Tensor, w: torch.Tensor, erase: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """Erase then add, for every write head: M * prod_h (1 - w_h e_h) + sum_h w_h a_h.

    memory (B, N, M), w (B, H, N), erase (B, H, M) in (0, 1), add (B, H, M) -> new memory (B, N, M).
    (Erasures commute and additions commute, so the order of the heads does not matter.)
    """
    w_t = w.transpose(1, 2)  # (B, N, H)
    if w.shape[1] == 1:
        # One write head: M (1 - w e) + w a = M + w (a - M e), three ops on the whole memory
        # instead of five (the per-step cost is dominated by such ops).
        return torch.addcmul(memory, w_t, add - memory * erase)
    keep = (1 - w.unsqueeze(-1) * erase.unsqueeze(-2)).prod(dim=1)
    return memory * keep + torch.bmm(w_t, add)
