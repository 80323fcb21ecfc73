"""Checkpoint averaging (as ESPnet's and NeMo's users know it): the element-wise mean of the weights
of several epochs' checkpoints of one run, batch-norm running statistics included, is often a
better model than any one of them.

An experiment keeps `epoch-E.pt` for its `train.keep_best` best epochs and its
`train.keep_last_epochs` last ones; `select_epochs` picks the last or best K of those."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ds2cli.checkpoint import load_checkpoint, save_checkpoint
from ds2cli.errors import DS2Error

_EPOCH = re.compile(r"^epoch-(\d+)\.pt$")


def epoch_checkpoints(exp_dir) -> dict[int, Path]:
    """epoch number -> checkpoints/epoch-E.pt of an experiment directory."""
    folder = Path(exp_dir) / "checkpoints"
    if not folder.is_dir():
        raise DS2Error(f"{exp_dir}: no checkpoints folder (not an experiment directory?)")
    return {int(m.group(1)): p for p in folder.iterdir() if (m := _EPOCH.match(p.name))}


def select_epochs(exp_dir, k: int, by: str = "last") -> list[Path]:
    """The `k` newest (`by`="last") or lowest dev WER (`by`="best") epoch checkpoints."""
    if by not in ("last", "best"):
        raise DS2Error(f"select epochs by 'last' or 'best', not {by!r}")
    found = epoch_checkpoints(exp_dir)
    if len(found) < k:
        raise DS2Error(f"{exp_dir}: {len(found)} epoch checkpoint(s) kept, {k} asked for "
                       "(keep more with train.keep_last_epochs or train.keep_best)")
    if by == "last":
        return [found[e] for e in sorted(found)[-k:]]
    wer = {}
    for e, path in found.items():
        value = load_checkpoint(path).get("metrics", {}).get("dev_wer")
        if value is None:
            raise DS2Error(f"{path}: no dev WER recorded; average by 'last' instead")
        wer[e] = value
    return [found[e] for e in sorted(found, key=lambda e: (wer[e], -e))[:k]]


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (in float64, cast back); integer tensors
    (batch-norm step counters) take the last state's value."""
    out = {}
    for name, last in states[-1].items():
        if last.is_floating_point():
            total = sum(s[name].double() for s in states)
            out[name] = (total / len(states)).to(last.dtype)
        else:
            out[name] = last.clone()
    return out


def average_checkpoints(paths: list, out) -> dict:
    """Write the average of checkpoints `paths` (same model config and alphabet) to `out`, with
    the last one's tokenizer, features and recipe and no training state. Returns its metrics."""
    if not paths:
        raise DS2Error("no checkpoints to average")
    ckpts = [load_checkpoint(p) for p in paths]
    first = ckpts[0]
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        for key in ("model_config", "tokenizer"):
            if ckpt[key] != first[key]:
                raise DS2Error(f"{path}: its {key.replace('_', ' ')} differs from {paths[0]}'s; "
                               "only checkpoints of one model can be averaged")
    averaged = {**ckpts[-1], "model_state": average_states([c["model_state"] for c in ckpts]),
                "train_state": None,
                "metrics": {"averaged": [str(p) for p in paths],
                            "dev_wer_of_each": [c.get("metrics", {}).get("dev_wer") for c in ckpts]}}
    save_checkpoint(out, averaged)
    return averaged["metrics"]
