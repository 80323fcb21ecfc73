"""`ds2cli average`: one checkpoint from the mean of several epochs' weights."""
from __future__ import annotations

from pathlib import Path

import click

from ds2cli.cli.common import echo_json, json_option, user_errors


@click.command(short_help="Average the last or best K epoch checkpoints into one.")
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.option("--last", "last_k", type=click.IntRange(1), help="Average the K newest epoch checkpoints.")
@click.option("--best", "best_k", type=click.IntRange(1), help="Average the K epochs of lowest dev WER.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Where to write it  [default: EXP_DIR/checkpoints/avg-{last,best}-K.pt]")
@json_option
@user_errors
def average(sources, last_k, best_k, out, as_json):
    """Average checkpoints: SOURCES is an experiment directory (with --last K or --best K; it
    keeps epoch-E.pt for train.keep_best best and train.keep_last_epochs last epochs) or two or
    more checkpoint files of one model. Weights and batch-norm running statistics are averaged.

    \b
    Examples:
      ds2cli average exp/speechocean --last 5
      ds2cli average exp/speechocean --best 3 --out exp/speechocean/checkpoints/avg.pt
      ds2cli average a.pt b.pt --out avg.pt
    """
    from ds2cli.average import average_checkpoints, select_epochs

    if len(sources) == 1 and Path(sources[0]).is_dir():
        if (last_k is None) == (best_k is None):
            raise click.UsageError("with an experiment directory give one of --last K or --best K")
        by, k = ("last", last_k) if last_k else ("best", best_k)
        paths = select_epochs(sources[0], k, by)
        out = out or str(Path(sources[0]) / "checkpoints" / f"avg-{by}-{k}.pt")
    else:
        if last_k or best_k:
            raise click.UsageError("--last/--best select epochs of an experiment directory, not of files")
        if len(sources) < 2 or not out:
            raise click.UsageError("give two or more checkpoint files and --out")
        paths = list(sources)
    metrics = average_checkpoints(paths, out)
    if as_json:
        echo_json({"out": out, **metrics})
    else:
        click.echo(f"averaged {len(paths)} checkpoints ({', '.join(Path(p).name for p in paths)}) -> {out}")
