"""The paper's five algorithmic tasks (§4.1-4.5) as batch generators, and the Bayes-optimal
estimator for dynamic N-grams.

A batch is (inputs (T, B, I), targets (T, B, O), mask (T, B)): the network sees inputs at every
step, and is scored only at steps where mask is true. Sequences of one batch may differ in length;
shorter ones are padded with zeros at the end (masked out). Every random draw uses the torch
Generator passed in, so a run is reproducible from its seed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

from ds2cli.errors import DS2Error


@dataclass
class TaskBatch:
    inputs: torch.Tensor   # (T, B, I) float
    targets: torch.Tensor  # (T, B, O) float in {0, 1}
    mask: torch.Tensor     # (T, B) bool: steps that are scored


def _bits(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=gen).float()


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high], inclusive."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _pad(samples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> TaskBatch:
    """Stack per-sequence (T_i, I), (T_i, O), (T_i,) into a zero-padded batch."""
    T = max(s[0].shape[0] for s in samples)
    B = len(samples)
    inputs = torch.zeros(T, B, samples[0][0].shape[1])
    targets = torch.zeros(T, B, samples[0][1].shape[1])
    mask = torch.zeros(T, B, dtype=torch.bool)
    for b, (x, y, m) in enumerate(samples):
        inputs[:len(x), b] = x
        targets[:len(y), b] = y
        mask[:len(m), b] = m
    return TaskBatch(inputs, targets, mask)


class Task:
    """Interface: a task config (dataclass fields) that generates batches."""

    name: ClassVar[str]
    input_size: ClassVar[int]
    output_size: ClassVar[int]

    def __post_init__(self):
        for low, high in (("min_len", "max_len"), ("min_repeats", "max_repeats"), ("min_items", "max_items"),
                          ("num_outputs", "num_inputs")):
            if hasattr(self, low) and getattr(self, low) > getattr(self, high):
                raise DS2Error(f"{self.name}: {low.replace('_', '-')} ({getattr(self, low)}) is larger than "
                               f"{high.replace('_', '-')} ({getattr(self, high)})")
        if getattr(self, "min_items", 2) < 2:
            raise DS2Error(f"{self.name}: needs at least 2 items")

    def to_dict(self) -> dict:
        return {"task": self.name, **asdict(self)}

    def sample(self, gen: torch.Generator, length=None):
        """One sequence as (inputs (T, I), targets (T, O), mask (T,)); `length` None = training mix."""
        raise NotImplementedError

    def batch(self, batch_size: int, gen: torch.Generator, length=None) -> TaskBatch:
        return _pad([self.sample(gen, length) for _ in range(batch_size)])

    def parse_length(self, text: str):
        """An --eval-len value: an integer unless the task says otherwise."""
        try:
            value = int(text)
        except ValueError:
            raise DS2Error(f"--eval-len {text!r}: expected a whole number") from None
        if value < 1:
            raise DS2Error(f"--eval-len {text!r}: must be at least 1")
        return value

    def format_length(self, length) -> str:
        return str(length)


@dataclass
class CopyTask(Task):
    """§4.1: random 8-bit vectors, a delimiter on its own channel, then reproduce the vectors."""

    name: ClassVar[str] = "copy"
    width: int = 8
    min_len: int = 1
    max_len: int = 20
    default_eval: ClassVar[tuple] = (10, 20, 30, 50, 120)

    @property
    def input_size(self) -> int:
        return self.width + 1

    @property
    def output_size(self) -> int:
        return self.width

    def sample(self, gen, length=None):
        L = length or _randint(gen, self.min_len, self.max_len)
        seq = _bits(gen, L, self.width)
        x = torch.zeros(2 * L + 1, self.width + 1)
        x[:L, :self.width] = seq
        x[L, self.width] = 1.0  # delimiter
        y = torch.zeros(2 * L + 1, self.width)
        y[L + 1:] = seq
        m = torch.zeros(2 * L + 1, dtype=torch.bool)
        m[L + 1:] = True
        return x, y, m


@dataclass
class RepeatCopyTask(Task):
    """§4.2: a sequence, then a repeat count (normalised to mean 0, variance 1 over the training
    counts) on its own channel; output the sequence that many times, then an end marker."""

    name: ClassVar[str] = "repeat-copy"
    width: int = 8
    min_len: int = 1
    max_len: int = 10
    min_repeats: int = 1
    max_repeats: int = 10
    default_eval: ClassVar[tuple] = ((10, 10), (10, 20), (20, 10))

    @property
    def input_size(self) -> int:
        return self.width + 2  # bits, delimiter, repeat count

    @property
    def output_size(self) -> int:
        return self.width + 1  # bits, end marker

    def normalise_repeats(self, repeats: float) -> float:
        """Map a count to mean 0 and variance 1 under the uniform training distribution."""
        n = self.max_repeats - self.min_repeats + 1
        mean = (self.min_repeats + self.max_repeats) / 2
        std = math.sqrt((n * n - 1) / 12)  # variance of a discrete uniform over n values
        return (repeats - mean) / std if std > 0 else 0.0

    def sample(self, gen, length=None):
        if length is None:
            L, reps = _randint(gen, self.min_len, self.max_len), _randint(gen, self.min_repeats, self.max_repeats)
        else:
            L, reps = length
        w = self.width
        seq = _bits(gen, L, w)
        T = L + 1 + L * reps + 1
        x = torch.zeros(T, w + 2)
        x[:L, :w] = seq
        x[L, w] = 1.0  # delimiter
        x[L, w + 1] = self.normalise_repeats(reps)
        y = torch.zeros(T, w + 1)
        y[L + 1:L + 1 + L * reps, :w] = seq.repeat(reps, 1)
        y[T - 1, w] = 1.0  # end marker
        m = torch.zeros(T, dtype=torch.bool)
        m[L + 1:] = True
        return x, y, m

    def parse_length(self, text: str):
        try:
            L, reps = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise DS2Error(f"--eval-len {text!r}: expected LENGTHxREPEATS, e.g. 10x20") from None
        if L < 1 or reps < 1:
            raise DS2Error(f"--eval-len {text!r}: length and repeats must be at least 1")
        return (L, reps)

    def format_length(self, length) -> str:
        return f"{length[0]}x{length[1]}"


@dataclass
class AssociativeRecallTask(Task):
    """§4.3: items of 3 six-bit vectors, each led by a delimiter; then a query item between two
    query delimiters; the target is the item that followed the query. Length = number of items."""

    name: ClassVar[str] = "associative-recall"
    width: int = 6
    item_len: int = 3
    min_items: int = 2
    max_items: int = 6
    default_eval: ClassVar[tuple] = (6, 12, 15)

    def parse_length(self, text: str):
        value = super().parse_length(text)
        if value < 2:
            raise DS2Error(f"--eval-len {text!r}: associative recall needs at least 2 items")
        return value

    @property
    def input_size(self) -> int:
        return self.width + 2  # bits, item delimiter, query delimiter

    @property
    def output_size(self) -> int:
        return self.width

    def sample(self, gen, length=None):
        k = length or _randint(gen, self.min_items, self.max_items)
        w, n = self.width, self.item_len
        items = _bits(gen, k, n, w)
        q = _randint(gen, 0, k - 2)  # any item but the last has a successor
        T = k * (n + 1) + (n + 2) + n
        x = torch.zeros(T, w + 2)
        for i in range(k):
            x[i * (n + 1), w] = 1.0
            x[i * (n + 1) + 1:(i + 1) * (n + 1), :w] = items[i]
        s = k * (n + 1)
        x[s, w + 1] = 1.0
        x[s + 1:s + 1 + n, :w] = items[q]
        x[s + 1 + n, w + 1] = 1.0
        y = torch.zeros(T, w)
        y[T - n:] = items[q + 1]
        m = torch.zeros(T, dtype=torch.bool)
        m[T - n:] = True
        return x, y, m


@dataclass
class NGramTask(Task):
    """§4.4: per sequence, draw a 6-gram model (one P(1) per 5-bit context) from Beta(1/2, 1/2),
    generate bits (the first 5 uniform), predict each next bit. Input at step t is bit t, the
    target bit t+1; steps predicting the first `context` bits are not scored. Length = bits."""

    name: ClassVar[str] = "ngrams"
    context: int = 5
    length: int = 200
    default_eval: ClassVar[tuple] = (200,)
    input_size: ClassVar[int] = 1
    output_size: ClassVar[int] = 1

    def bits(self, batch_size: int, gen: torch.Generator, length: int | None = None) -> torch.Tensor:
        """Draw sequences of bits (B, T) from freshly drawn 6-gram models."""
        T, c = length or self.length, self.context
        # Beta(1/2, 1/2) = X / (X + Y) with X, Y ~ Gamma(1/2) = Z^2 / 2, Z standard normal
        # (drawn this way so that the run's Generator controls it).
        zx = torch.randn(batch_size, 2 ** c, generator=gen) ** 2
        zy = torch.randn(batch_size, 2 ** c, generator=gen) ** 2
        probs = zx / (zx + zy)  # (B, 32) ~ Beta(1/2, 1/2)
        bits = torch.zeros(batch_size, T)
        bits[:, :c] = _bits(gen, batch_size, c)
        weights = 2 ** torch.arange(c - 1, -1, -1)
        u = torch.rand(batch_size, T, generator=gen)
        for t in range(c, T):
            ctx = (bits[:, t - c:t].long() * weights).sum(1)
            bits[:, t] = (u[:, t] < probs.gather(1, ctx[:, None])[:, 0]).float()
        return bits

    def parse_length(self, text: str):
        value = super().parse_length(text)
        if value <= self.context:
            raise DS2Error(f"--eval-len {text!r}: an n-gram sequence needs more than {self.context} bits")
        return value

    def batch(self, batch_size, gen, length=None):
        bits = self.bits(batch_size, gen, length)
        return self.batch_from_bits(bits)

    def batch_from_bits(self, bits: torch.Tensor) -> TaskBatch:
        """bits (B, T) -> inputs bits[:, :-1], targets bits[:, 1:] as (T-1, B, 1)."""
        x = bits[:, :-1].t().unsqueeze(-1).contiguous()
        y = bits[:, 1:].t().unsqueeze(-1).contiguous()
        mask = torch.zeros(y.shape[:2], dtype=torch.bool)
        mask[self.context - 1:] = True  # target index t+1 >= context
        return TaskBatch(x, y, mask)


def ngram_optimal_cost(bits: torch.Tensor, context: int = 5) -> torch.Tensor:
    """Bayes-optimal cost in bits of each sequence (B, T) -> (B,), over bits context..T-1.

    P(1 | c) = (N1 + 1/2) / (N1 + N0 + 1), N1 and N0 the ones and zeros seen so far after
    context c in this sequence (the posterior mean under the Beta(1/2, 1/2) prior).
    """
    B, T = bits.shape
    weights = 2 ** torch.arange(context - 1, -1, -1)
    ctx = (bits.long().unfold(1, context, 1)[:, :T - context] * weights).sum(-1)  # (B, T-c)
    nxt = bits[:, context:]  # (B, T-c)
    onehot = torch.nn.functional.one_hot(ctx, 2 ** context).float()  # (B, T-c, 32)
    ones = torch.cumsum(onehot * nxt.unsqueeze(-1), 1) - onehot * nxt.unsqueeze(-1)  # seen before t
    seen = torch.cumsum(onehot, 1) - onehot
    n1 = (ones * onehot).sum(-1)
    n = (seen * onehot).sum(-1)
    p1 = (n1 + 0.5) / (n + 1)
    p = torch.where(nxt > 0.5, p1, 1 - p1)
    return -torch.log2(p).sum(1)


@dataclass
class PrioritySortTask(Task):
    """§4.5: random 8-bit vectors, each with a priority uniform in [-1, 1] on an extra channel,
    then a delimiter; the target is the highest-priority vectors in descending priority.
    Length = number of input vectors; outputs scale with it (16 of 20 by default)."""

    name: ClassVar[str] = "priority-sort"
    width: int = 8
    num_inputs: int = 20
    num_outputs: int = 16
    default_eval: ClassVar[tuple] = (20,)

    @property
    def input_size(self) -> int:
        return self.width + 2  # bits, priority, delimiter

    @property
    def output_size(self) -> int:
        return self.width

    def sample(self, gen, length=None):
        n = length or self.num_inputs
        k = max(1, round(n * self.num_outputs / self.num_inputs))
        w = self.width
        seq = _bits(gen, n, w)
        prio = torch.rand(n, generator=gen) * 2 - 1
        T = n + 1 + k
        x = torch.zeros(T, w + 2)
        x[:n, :w] = seq
        x[:n, w] = prio
        x[n, w + 1] = 1.0  # delimiter
        y = torch.zeros(T, w)
        y[n + 1:] = seq[torch.argsort(prio, descending=True)[:k]]
        m = torch.zeros(T, dtype=torch.bool)
        m[n + 1:] = True
        return x, y, m


TASKS: dict[str, type[Task]] = {
    t.name: t for t in (CopyTask, RepeatCopyTask, AssociativeRecallTask, NGramTask, PrioritySortTask)
}


def task_from_dict(d: dict) -> Task:
    d = dict(d)
    name = d.pop("task")
    if name not in TASKS:
        raise DS2Error(f"unknown task {name!r} (expected one of {', '.join(TASKS)})")
    return TASKS[name](**d)
