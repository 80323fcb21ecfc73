"""Training, evaluation and checkpoints for the NTM tasks.

Cost is the paper's: binary cross-entropy in bits, summed over the scored output bits of a
sequence. Bit errors: output bits thresholded at 0.5 that differ from the target, per sequence.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ds2cli.errors import DS2Error
from ds2cli.fileio import torch_save
from ds2cli.ntm.machine import NTMConfig, build_machine
from ds2cli.ntm.tasks import TaskBatch, NGramTask, Task, ngram_optimal_cost, task_from_dict

CHECKPOINT_FORMAT = "ds2cli-ntm-checkpoint"
CHECKPOINT_VERSION = 1
LN2 = math.log(2.0)

# The paper's hyper-parameters (Tables 1-3; memory 128 x 20 throughout):
# (heads, controller size, controller layers, learning rate) per task and architecture.
PAPER = {
    "copy": {"ff": (1, 100, 1, 1e-4), "lstm": (1, 100, 1, 1e-4), "baseline": (256, 3, 3e-5)},
    "repeat-copy": {"ff": (1, 100, 1, 1e-4), "lstm": (1, 100, 1, 1e-4), "baseline": (512, 3, 3e-5)},
    "associative-recall": {"ff": (4, 256, 1, 1e-4), "lstm": (1, 100, 1, 1e-4), "baseline": (256, 3, 1e-4)},
    "ngrams": {"ff": (1, 100, 1, 3e-5), "lstm": (1, 100, 1, 3e-5), "baseline": (128, 3, 1e-4)},
    "priority-sort": {"ff": (8, 512, 1, 3e-5), "lstm": (5, 100, 2, 3e-5), "baseline": (128, 3, 3e-5)},
}


def paper_configs(task: Task, model: str = "ntm", controller: str = "lstm") -> tuple[NTMConfig, float]:
    """The paper's model config and learning rate for a task."""
    row = PAPER[task.name]
    if model == "lstm":
        size, layers, lr = row["baseline"]
        return NTMConfig(task.input_size, task.output_size, model="lstm", hidden_size=size, layers=layers), lr
    if controller not in ("ff", "lstm"):
        raise DS2Error(f"unknown controller {controller!r} (expected lstm or ff)")
    heads, size, layers, lr = row[controller]
    cfg = NTMConfig(task.input_size, task.output_size, model="ntm", controller=controller,
                      hidden_size=size, layers=layers, read_heads=heads, write_heads=heads)
    return cfg, lr


@dataclass
class NTMTrainConfig:
    steps: int = 10000            # optimiser steps; sequences = steps * batch_size
    batch_size: int = 1
    lr: float = 1e-4
    momentum: float = 0.9
    alpha: float = 0.95           # RMSProp decay of the squared-gradient average
    # RMSProp denominator floor, as in Graves (2013)'s sqrt(n - g^2 + 1e-4) >= 0.01. Torch's default
    # 1e-8 lets parameters whose gradients were ~0 for a while (unused initial weightings, say)
    # jump by ~lr * g / 1e-8 on the next loss spike: converged copy models collapsed that way.
    eps: float = 1e-2
    clip: float = 10.0            # every gradient component clipped to [-clip, clip]
    seed: int = 0
    checkpoint_every: int = 100   # steps between validation + checkpoint
    val_sequences: int = 100      # fixed validation set (training distribution) to pick the best
    select_len: int | None = None  # also validate at this (longer) length to pick the best
    # Once validation bit errors per sequence fall below lr_drop_below, multiply the learning rate
    # by lr_drop (once). Solved NTMs are fragile: at the full rate one loss spike (RMSProp's
    # normalised step times momentum) can wipe the solution out, which we saw on copy.
    lr_drop_below: float | None = 1.0
    lr_drop: float = 0.1
    # Learning-rate schedule over the `steps` of the run: "constant"; "cosine" from lr down to
    # lr * lr_final (half a cosine period); or "step": lr, then lr * lr_final from the fraction
    # decay_at of the steps on. Any of them after a linear warm-up over warmup_steps.
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    lr_final: float = 0.0
    decay_at: float = 0.75
    # A validation cost more than rollback_above bits per sequence above the best so far is a
    # collapse (NTMs have them: n-grams went from 164 to 212 bits, worse than guessing, within
    # 4,000 sequences at lr 1e-3): restore the best weights and optimiser state and halve the
    # learning rate from then on. None: never.
    rollback_above: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Run:
    """A model with its task, configs, optimiser and training state."""

    task: Task
    model_cfg: NTMConfig
    train_cfg: NTMTrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    gen: torch.Generator          # the one generator for training data
    step: int = 0
    best: dict = field(default_factory=dict)     # {"step", "cost", "bit_errors"} of best validation
    lr_dropped_at: int | None = None             # step at which the learning rate was dropped
    lr_scale: float = 1.0                        # halved at every roll-back
    rollbacks: list = field(default_factory=list)  # steps at which a collapse was rolled back
    history: list = field(default_factory=list)  # one dict per report


def make_ntm_optimizer(model: torch.nn.Module, cfg: NTMTrainConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(model.parameters(), lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps,
                               momentum=cfg.momentum, foreach=True)


def new_run(task: Task, model_cfg: NTMConfig, train_cfg: NTMTrainConfig) -> Run:
    """A fresh model, seeded by train_cfg.seed (initial weights and the data stream)."""
    torch.manual_seed(train_cfg.seed)
    model = build_machine(model_cfg)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    return Run(task, model_cfg, train_cfg, model, make_ntm_optimizer(model, train_cfg), gen)


LR_SCHEDULES = ("constant", "cosine", "step")


def lr_factor(cfg: NTMTrainConfig, step: int) -> float:
    """The schedule's multiplier of cfg.lr for optimiser step `step` (0-based) of cfg.steps."""
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise DS2Error(f"unknown learning-rate schedule {cfg.lr_schedule!r} (expected {' or '.join(LR_SCHEDULES)})")
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return 1.0
    if cfg.lr_schedule == "step":
        return cfg.lr_final if step >= cfg.decay_at * cfg.steps else 1.0
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * frac))


def set_scheduled_lr(run: Run) -> None:
    """Set the optimiser's rate for the next step: schedule times the drop (if it happened) times
    the roll-backs' halvings."""
    cfg = run.train_cfg
    lr = cfg.lr * lr_factor(cfg, run.step) * (cfg.lr_drop if run.lr_dropped_at is not None else 1.0) * run.lr_scale
    for group in run.optimizer.param_groups:
        group["lr"] = lr


def snapshot(run: Run) -> dict:
    """Copies of the weights and the optimiser state, for keep_best and roll-backs."""
    return {"model": {k: v.clone() for k, v in run.model.state_dict().items()},
            "optimizer": copy.deepcopy(run.optimizer.state_dict())}


def maybe_roll_back(run: Run, score: float, best_score: float | None, best: dict | None) -> bool:
    """If score is more than rollback_above above best_score, restore `best` (a snapshot) and
    halve the learning rate from then on. Returns whether it rolled back."""
    limit = run.train_cfg.rollback_above
    if limit is None or best is None or best_score is None or score <= best_score + limit:
        return False
    run.model.load_state_dict(best["model"])
    run.optimizer.load_state_dict(copy.deepcopy(best["optimizer"]))
    run.lr_scale *= 0.5
    run.rollbacks.append(run.step)
    set_scheduled_lr(run)
    return True


def maybe_drop_lr(run: Run, val_bit_errors: float) -> bool:
    """Apply NTMTrainConfig.lr_drop once validation bit errors fall below lr_drop_below."""
    cfg = run.train_cfg
    if run.lr_dropped_at is not None or cfg.lr_drop_below is None or val_bit_errors >= cfg.lr_drop_below:
        return False
    run.lr_dropped_at = run.step
    set_scheduled_lr(run)  # the rate is derived from the run's state: one place computes it
    return True


# ---------------------------------------------------------------- cost and bit errors

def sequence_metrics(logits: torch.Tensor, batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (T, B, O) -> (cost in bits (B,), bit errors (B,)) over the scored steps."""
    m = batch.mask.unsqueeze(-1).float()
    bce = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none")
    cost = (bce * m).sum((0, 2)) / LN2
    errors = (((logits > 0).float() != batch.targets).float() * m).sum((0, 2))
    return cost, errors


def train_step(run: Run, batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch; returns detached (cost, bit errors) summed over the batch."""
    logits = run.model(batch.inputs)
    m = batch.mask.unsqueeze(-1).float()
    # The paper's cost: cross-entropy summed over a sequence's scored bits (in nats), averaged
    # over the batch. (Its scale matters against the RMSProp floor `eps` and the clip.)
    bce = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none")
    loss = (bce * m).sum() / batch.targets.shape[1]
    set_scheduled_lr(run)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_value_(run.model.parameters(), run.train_cfg.clip)
    run.optimizer.step()
    with torch.no_grad():
        cost, errors = sequence_metrics(logits.detach(), batch)
    return cost.sum(), errors.sum()


# ---------------------------------------------------------------- evaluation

@dataclass
class EvalResult:
    length: str               # the evaluation length as given (e.g. "120" or "10x20")
    sequences: int
    cost: float               # mean cost per sequence, bits
    bit_errors: float         # mean bit errors per sequence
    max_bit_errors: float
    perfect: float            # fraction of sequences with no bit error
    optimal_cost: float | None = None  # n-grams: the Bayes-optimal estimator on the same sequences


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Task, length, sequences: int = 100, seed: int = 1,
             batch_size: int = 100) -> EvalResult:
    """Mean cost and bit errors per sequence on `sequences` fixed sequences at one length."""
    model.eval()
    costs, errors, optimal = [], [], []
    gen = torch.Generator().manual_seed(seed)
    # N-gram bits are drawn for the whole set at once, so the set does not depend on batch_size.
    all_bits = task.bits(sequences, gen, length) if isinstance(task, NGramTask) else None
    for start in range(0, sequences, batch_size):
        n = min(batch_size, sequences - start)
        if all_bits is not None:
            bits = all_bits[start:start + n]
            batch = task.batch_from_bits(bits)
            optimal.append(ngram_optimal_cost(bits, task.context))
        else:
            batch = task.batch(n, gen, length)
        c, e = sequence_metrics(model(batch.inputs), batch)
        costs.append(c)
        errors.append(e)
    model.train()
    c, e = torch.cat(costs), torch.cat(errors)
    return EvalResult(
        length=task.format_length(length) if length is not None else "train",
        sequences=sequences, cost=c.mean().item(), bit_errors=e.mean().item(),
        max_bit_errors=e.max().item(), perfect=(e == 0).float().mean().item(),
        optimal_cost=torch.cat(optimal).mean().item() if optimal else None)


# ---------------------------------------------------------------- checkpoints

def checkpoint_dict(run: Run) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "task": run.task.to_dict(),
        "model": run.model_cfg.to_dict(),
        "train": run.train_cfg.to_dict(),
        "state_dict": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "step": run.step,
        "rng": {"data": run.gen.get_state(), "torch": torch.get_rng_state()},
        "best": dict(run.best),
        "lr_dropped_at": run.lr_dropped_at,
        "lr_scale": run.lr_scale,
        "rollbacks": list(run.rollbacks),
        "history": list(run.history),
    }


def save_ntm_checkpoint(run: Run, path: str | os.PathLike) -> None:
    """Write atomically (temp file + rename)."""
    torch_save(checkpoint_dict(run), path)


def load_ntm_checkpoint(path: str | os.PathLike) -> Run:
    """Rebuild a Run from a checkpoint; DS2Error naming the file if it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise DS2Error(f"{path}: checkpoint not found")
    try:
        ck = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # corrupt, truncated, or holding objects we refuse to unpickle
        raise DS2Error(f"{path}: not a readable ds2cli NTM checkpoint ({type(err).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise DS2Error(f"{path}: not a ds2cli NTM checkpoint (format is not {CHECKPOINT_FORMAT!r})")
    try:
        task = task_from_dict(ck["task"])
        model_cfg = NTMConfig.from_dict(ck["model"])
        train_cfg = NTMTrainConfig(**ck["train"])
        model = build_machine(model_cfg)
        model.load_state_dict(ck["state_dict"])
        optimizer = make_ntm_optimizer(model, train_cfg)
        optimizer.load_state_dict(ck["optimizer"])
        gen = torch.Generator()
        gen.set_state(ck["rng"]["data"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise DS2Error(f"{path}: damaged ds2cli NTM checkpoint ({type(err).__name__}: {err})") from None
    torch.set_rng_state(ck["rng"]["torch"])
    return Run(task, model_cfg, train_cfg, model, optimizer, gen, step=ck["step"],
               best=dict(ck.get("best", {})), lr_dropped_at=ck.get("lr_dropped_at"),
               lr_scale=ck.get("lr_scale", 1.0), rollbacks=list(ck.get("rollbacks", [])),
               history=list(ck.get("history", [])))


# ---------------------------------------------------------------- the training loop

def fit(run: Run, steps: int, out_dir: str | os.PathLike | None = None,
          report: Callable[[dict], None] | None = None, report_every: int = 50,
          keep_best: bool = False) -> Run:
    """Train for `steps` more optimiser steps.

    Every checkpoint_every steps (and at the end): validate on a fixed set drawn from the training
    distribution, write last.pt and, when validation cost improved, best.pt under out_dir.
    `report` gets a dict (step, sequences, cost, bit_errors per sequence, seconds) every
    report_every steps, for a progress bar. keep_best: end with the best validated weights
    (NTM training has loss spikes; the paper's pitfalls advise keeping the best checkpoint).
    """
    best_state = None
    cfg = run.train_cfg
    out = Path(out_dir) if out_dir else None
    cost_sum = torch.zeros(())
    err_sum = torch.zeros(())
    seen = 0
    t0 = time.perf_counter()
    end = run.step + steps
    while run.step < end:
        # Forward, backward, clip, step (metrics stay tensors: no per-step .item()).
        c, e = train_step(run, run.task.batch(cfg.batch_size, run.gen))
        cost_sum += c
        err_sum += e
        seen += cfg.batch_size
        run.step += 1
        # Report a running average for the progress bar and the history.
        if run.step % report_every == 0 or run.step == end:
            row = {"step": run.step, "sequences": run.step * cfg.batch_size, "cost": cost_sum.item() / seen,
                   "bit_errors": err_sum.item() / seen, "seconds": time.perf_counter() - t0}
            run.history.append(row)
            if report:
                report(row)
            cost_sum.zero_()
            err_sum.zero_()
            seen = 0
        # Validate and checkpoint.
        if run.step % cfg.checkpoint_every == 0 or (run.step == end and (out or keep_best)):
            val = evaluate(run.model, run.task, None, cfg.val_sequences, seed=cfg.seed + 10_000)
            score = val.cost
            if cfg.select_len:  # generalisation counts too (validation seeds differ from the test's)
                score += evaluate(run.model, run.task, cfg.select_len, cfg.val_sequences, seed=cfg.seed + 10_000).cost
            best_score = run.best.get("score", run.best.get("cost")) if run.best else None
            if maybe_roll_back(run, score, best_score, best_state):
                continue  # back at the best weights; nothing new to save
            maybe_drop_lr(run, val.bit_errors)
            improved = not run.best or score < best_score
            if improved:
                run.best = {"step": run.step, "cost": val.cost, "bit_errors": val.bit_errors, "score": score}
                if keep_best or cfg.rollback_above is not None:
                    best_state = snapshot(run)
            if out:
                if improved:
                    save_ntm_checkpoint(run, out / "best.pt")
                save_ntm_checkpoint(run, out / "last.pt")
    if best_state is not None and keep_best:
        run.model.load_state_dict(best_state["model"])
    return run


def eval_table(rows: list[EvalResult]) -> str:
    """A plain-text table of evaluation results."""
    has_opt = any(r.optimal_cost is not None for r in rows)
    head = f"{'length':>8} {'seqs':>6} {'cost (bits/seq)':>16} {'bit errors/seq':>15} {'max':>6} {'perfect':>8}"
    if has_opt:
        head += f" {'optimal cost':>13}"
    lines = [head]
    for r in rows:
        line = (f"{r.length:>8} {r.sequences:>6} {r.cost:>16.4f} {r.bit_errors:>15.4f} "
                f"{r.max_bit_errors:>6.0f} {r.perfect:>8.2%}")
        if has_opt:
            line += f" {r.optimal_cost:>13.4f}" if r.optimal_cost is not None else f" {'':>13}"
        lines.append(line)
    return "\n".join(lines)
