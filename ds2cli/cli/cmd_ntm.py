"""`ds2cli ntm TASK`: train and evaluate Neural Turing Machines on the paper's five tasks.

The commands parse options and call ds2cli.ntm.run.run_ntm (torch is imported inside the commands so
that `ds2cli --help` stays fast)."""
from __future__ import annotations

import click

from ds2cli.cli.common import echo_json, json_option, quiet_option, user_errors
from ds2cli.progress import progress

# Task-specific options: (option, task config field, type, help). Defaults come from the task.
TASK_OPTIONS = {
    "copy": [("--min-len", "min_len", int, "Shortest training sequence."),
             ("--max-len", "max_len", int, "Longest training sequence.")],
    "repeat-copy": [("--max-len", "max_len", int, "Longest training sequence."),
                    ("--max-repeats", "max_repeats", int, "Most repeats in training (counts are 1..this).")],
    "associative-recall": [("--min-items", "min_items", int, "Fewest items in training."),
                           ("--max-items", "max_items", int, "Most items in training.")],
    "ngrams": [("--length", "length", int, "Bits per training sequence.")],
    "priority-sort": [("--num-inputs", "num_inputs", int, "Input vectors per sequence."),
                      ("--num-outputs", "num_outputs", int, "Highest-priority vectors to output, sorted.")],
}

EVAL_LEN_HELP = {
    "copy": "sequence length",
    "repeat-copy": "sequence length and repeats as LENGTHxREPEATS, e.g. 10x20",
    "associative-recall": "number of items",
    "ngrams": "bits per sequence",
    "priority-sort": "number of input vectors",
}


@click.group(short_help="Neural Turing Machines on the paper's algorithmic tasks.")
def ntm():
    """Neural Turing Machines (Graves et al. 2014) on the five algorithmic tasks.

    Each subcommand trains with the paper's hyper-parameters (memory 128 x 20, RMSProp with
    momentum 0.9, gradients clipped to [-10, 10]), checkpoints, then evaluates cost and bit
    errors per sequence at each --eval-len.

    \b
      ds2cli ntm copy                           # train, then evaluate at 10..120
      ds2cli ntm copy --eval-len 120 --checkpoint exp/ntm/copy-ntm-lstm/best.pt --eval-only
      ds2cli ntm associative-recall --controller ff --plot figs/
    """


def _common_options(func):
    options = [
        click.option("--model", type=click.Choice(["ntm", "lstm"]), default="ntm", show_default=True,
                     help="The NTM, or the paper's LSTM baseline."),
        click.option("--controller", type=click.Choice(["lstm", "ff"]), default="lstm", show_default=True,
                     help="NTM controller: LSTM or feedforward."),
        click.option("--steps", type=click.IntRange(0), default=None,
                     help="Optimiser steps (sequences = steps x batch size). [default: per task; "
                          "with --checkpoint: more steps]"),
        click.option("--batch-size", type=click.IntRange(1), default=None, help="Sequences per step. [default: per task]"),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for weights and training data."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="RMSProp learning rate. [default: per task for the NTM (see README), "
                          "the paper's for the LSTM baseline]"),
        click.option("--momentum", type=click.FloatRange(0, 1), default=0.9, show_default=True),
        click.option("--clip", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
                     help="Clip every gradient component to [-clip, clip]."),
        click.option("--heads", type=click.IntRange(1), default=None,
                     help="Read heads (and as many write heads). [default: the paper's]"),
        click.option("--write-heads", type=click.IntRange(1), default=None, help="Write heads, if not --heads."),
        click.option("--controller-size", type=click.IntRange(1), default=None,
                     help="Controller (or LSTM baseline) width. [default: the paper's]"),
        click.option("--controller-layers", type=click.IntRange(1), default=None, help="[default: the paper's]"),
        click.option("--memory-rows", type=click.IntRange(1), default=128, show_default=True, help="N."),
        click.option("--memory-width", type=click.IntRange(1), default=20, show_default=True, help="M."),
        click.option("--write-init", type=click.Choice(["free", "sequential"]), default=None,
                     help="Write heads' initial addressing: free, or biased to move one row per step. "
                          "[default: sequential for associative-recall, ngrams and priority-sort, else free]"),
        click.option("--eval-len", "eval_lens", multiple=True, metavar="LEN",
                     help="Evaluation length (repeatable). [default: the paper's test lengths]"),
        click.option("--eval-sequences", type=click.IntRange(1), default=None,
                     help="Sequences per evaluation length. [default: 100; 1000 for ngrams]"),
        click.option("--eval-seed", type=int, default=1, show_default=True,
                     help="Seed of the evaluation sequences (the same for every model)."),
        click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                     help="Resume training from this checkpoint (or evaluate it with --eval-only)."),
        click.option("--eval-only", is_flag=True, help="Only evaluate --checkpoint."),
        click.option("--out", type=click.Path(file_okay=False), default=None,
                     help="Checkpoint folder. [default: exp/ntm/TASK-MODEL]"),
        click.option("--checkpoint-every", type=click.IntRange(1), default=100, show_default=True,
                     help="Steps between validation and checkpoints (best.pt, last.pt)."),
        click.option("--plot", "plot_dir", type=click.Path(file_okay=False), default=None,
                     help="Write PNG figures (inputs, outputs, head weightings) for a sample at each length."),
        click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
                     help="Torch CPU threads (NTM steps are tiny: one thread is usually fastest)."),
        quiet_option,
        json_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _make_command(task_name: str):
    def command(**opts):
        from ds2cli.ntm.run import NTMOptions, run_ntm

        task_fields = {field: opts.pop(field) for _, field, _, _ in TASK_OPTIONS[task_name]}
        as_json, quiet = opts.pop("as_json"), opts.pop("quiet")
        bar = None

        def report(row):  # a progress bar over this call's steps, with the running cost
            nonlocal bar
            if bar is None:
                bar = progress(total=row["total"], desc=task_name, quiet=quiet, unit="step")
            bar.update(row["done"] - bar.n)
            bar.set_postfix(cost=f"{row['cost']:.3f}", bit_errors=f"{row['bit_errors']:.3f}")

        result = run_ntm(NTMOptions(task=task_name, task_fields=task_fields, **opts), report=report)
        if bar is not None:
            bar.close()
        if as_json:
            echo_json(result.to_dict())
        else:
            click.echo(result.summary())

    command.__name__ = task_name.replace("-", "_")
    command = user_errors(command)
    for flag, field, typ, help_text in reversed(TASK_OPTIONS[task_name]):
        command = click.option(flag, field, type=click.IntRange(1), default=None,
                               help=help_text + " [default: the paper's]")(command)
    command = _common_options(command)
    doc = (f"Train an NTM (or the LSTM baseline) on the {task_name} task, then evaluate.\n\n"
           f"--eval-len is the {EVAL_LEN_HELP[task_name]}.")
    return ntm.command(task_name, help=doc, short_help=f"Train and evaluate on the {task_name} task.")(command)


for _name in TASK_OPTIONS:
    _make_command(_name)
