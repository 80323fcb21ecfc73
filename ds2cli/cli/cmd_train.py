"""`ds2cli train`: train a DS2 model from a recipe (one process, or N data-parallel workers)."""
from __future__ import annotations

import os
import subprocess
import sys

from pathlib import Path

import click

from ds2cli.cli.common import echo_json, json_option, quiet_option, user_errors


def _relaunch_args(recipe, data_dir, exp_dir, sets, resume, longest_first, device, precision, quiet,
                   as_json) -> list[str]:
    """The same command for each worker, without --nproc."""
    args = ["--recipe", recipe, "--exp-dir", str(exp_dir), "--resume" if resume else "--no-resume"]
    args += ["--data-dir", data_dir] if data_dir else []
    for item in sets:
        args += ["--set", item]
    args += ["--longest-first"] if longest_first else []
    args += ["--device", device] if device else []
    args += ["--precision", precision] if precision else []
    args += ["--quiet"] if quiet else []
    args += ["--json"] if as_json else []
    return args


@click.command(short_help="Train a Deep Speech 2 model from a recipe.")
@click.option("--recipe", default="tiny", show_default=True,
              help="Recipe name (recipes/NAME.toml: tiny, digits, arctic, librispeech, aishell) or a .toml path.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Corpus folder for the prepare stage (overrides [data] data_dir).")
@click.option("--exp-dir", type=click.Path(file_okay=False),
              help="Experiment directory  [default: exp/<recipe>]")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a recipe value (TOML syntax), e.g. --set train.epochs=5 --set model.rnn_hidden=512.")
@click.option("--nproc", type=click.IntRange(1), default=1, show_default=True,
              help="Data-parallel workers on this machine (re-launches through torch.distributed.run).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from checkpoints/last.pt if the experiment has one.")
@click.option("--longest-first", is_flag=True,
              help="Run the batch with the most audio first, to learn at once whether memory suffices.")
@click.option("--device", help="cpu, cuda or cuda:N  [default: recipe's train.device, auto]")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]),
              help="Arithmetic: fp32, bf16 (CPU/GPU) or fp16 (GPU)  [default: recipe's]")
@click.option("--init-from", type=click.Path(dir_okay=False),
              help="Start from this checkpoint's matching layers (the output layer only when the "
                   "alphabets agree), e.g. a model pretrained on the synthetic corpus.")
@click.option("--threads", type=click.IntRange(1),
              help="CPU threads per worker  [default: recipe's train.threads, else cores / workers]")
@quiet_option
@json_option
@user_errors
def train(recipe, data_dir, exp_dir, sets, nproc, resume, longest_first, device, precision, init_from, threads,
          quiet, as_json):
    """Train a Deep Speech 2 recogniser as a recipe describes: CTC loss, SortaGrad, length-bucketed
    batches, augmentation, validation (greedy dev WER/CER) after every epoch.

    \b
    The recipe's data is prepared first if the experiment directory has none. Everything goes to
    the experiment directory: checkpoints/{last,best,epoch-E,step-N}.pt, metrics.jsonl,
    curves.png, train_report.json. An interrupted run continues where it stopped (--resume).

    \b
    Several workers: `--nproc N` on one machine; across machines run the same command (without
    --nproc) under torchrun, e.g.
      torchrun --nnodes 2 --nproc_per_node 8 --rdzv_endpoint HOST:29400 -m ds2cli train --recipe librispeech
    (nccl on GPUs, gloo on CPUs; max_batch_seconds is per worker).

    \b
    Examples:
      ds2cli train                                  # the tiny recipe on the embedded corpus
      ds2cli train --recipe librispeech --data-dir /data/LibriSpeech --nproc 8
      ds2cli train --recipe digits --set train.epochs=5 --precision bf16
      ds2cli train --recipe speechocean --init-from exp/tiny/checkpoints/best.pt --exp-dir exp/so-ft
    """

    from ds2cli.recipe import experiment_dir, load_recipe
    from ds2cli.trainer import check_device

    try:
        check_device(device or "auto")  # cheap checks before any preparation
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--device") from None

    sets = list(sets) + ([f"train.threads={threads}"] if threads else [])  # workers inherit it
    sets += [f"train.init_from={_toml(str(Path(init_from).resolve()))}"] if init_from else []
    overrides = list(sets)
    overrides += [f"train.device={_toml(device)}"] if device else []
    overrides += [f"train.precision={_toml(precision)}"] if precision else []
    spec = load_recipe(recipe, overrides)
    exp = Path(exp_dir) if exp_dir else experiment_dir(spec)
    log = (lambda msg: None) if as_json else (lambda msg: click.echo(msg, err=True))
    if nproc > 1:
        from ds2cli.stages import ensure_prepared

        ensure_prepared(spec, exp, data_dir=data_dir, quiet=quiet, log=log)  # once, before the workers start
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", "ds2cli", "train"] + _relaunch_args(recipe, data_dir, exp, sets, resume, longest_first,
                                                        device, precision, quiet, as_json)
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        code = subprocess.call(cmd, env=env)
        if code:
            raise click.ClickException(f"{nproc} training workers failed (exit code {code})")
        return

    from dataclasses import asdict

    from ds2cli.trainer import train as run_training

    report = run_training(spec, exp, data_dir=data_dir, resume=resume, longest_first=longest_first,
                          quiet=quiet, log=log)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if as_json:
        echo_json({k: v for k, v in asdict(report).items() if k != "history"})
    else:
        click.echo(report.summary())


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
