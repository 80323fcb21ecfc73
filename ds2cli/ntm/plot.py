"""Figures like the paper's Figs. 6 and 8: inputs, targets and outputs over time, and the write
and read weightings over memory rows, for one sample sequence."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ds2cli.fileio import atomic_path
from ds2cli.ntm.tasks import Task


@torch.no_grad()
def plot_sample(model: torch.nn.Module, task: Task, length, path: str | os.PathLike, seed: int = 1) -> Path:
    """Run one sequence at `length` (None = training mix) and write a PNG to `path`."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    model.eval()
    batch = task.batch(1, torch.Generator().manual_seed(seed), length)
    logits, trace = model(batch.inputs, trace=True)
    model.train()
    outputs = torch.sigmoid(logits[:, 0]) * batch.mask[:, 0, None]  # (T, O), unscored steps blank
    panels = [("inputs", batch.inputs[:, 0]), ("targets", batch.targets[:, 0] * batch.mask[:, 0, None]),
              ("outputs", outputs)]
    if trace is not None:
        for h in range(trace.write.shape[2]):
            panels.append((f"write weighting (head {h})", trace.write[:, 0, h]))
        for h in range(trace.read.shape[2]):
            panels.append((f"read weighting (head {h})", trace.read[:, 0, h]))
    heights = [max(1.0, min(3.0, p.shape[1] / 10)) for _, p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, batch.inputs.shape[0] / 12), sum(heights) + 1),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (title, data) in zip(axes[:, 0], panels):
        # Bits on a fixed 0-1 scale (priorities and repeat counts may leave it); weightings auto.
        scale = {} if "weighting" in title else {"vmin": min(0.0, float(data.min())), "vmax": max(1.0, float(data.max()))}
        ax.imshow(data.t().numpy(), aspect="auto", interpolation="nearest", cmap="gray_r", **scale)
        ax.set_title(title, fontsize=8, loc="left")
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("time step")
    fig.suptitle(f"{task.name}, length {task.format_length(length) if length is not None else 'train'}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
