"""`ds2cli lm`: build KenLM n-gram language models."""
from __future__ import annotations

import click

from ds2cli.cli.common import echo_json, json_option, user_errors


@click.group(short_help="Build KenLM language models.")
def lm():
    """KenLM n-gram language models for `ds2cli decode`."""


@lm.command(short_help="Build an ARPA and a KenLM binary from a text corpus.")
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="lm", show_default=True,
              help="Output folder (lm.arpa, lm.bin, lm.vocab, lm.json).")
@click.option("--order", type=click.IntRange(1), default=3, show_default=True, help="N-gram order.")
@click.option("--prune", default="", help="lmplz --prune thresholds per order, e.g. '0 0 1'.")
@click.option("--level", type=click.Choice(["auto", "word", "char"]), default="auto", show_default=True,
              help="Word or character units (auto: characters for Mandarin).")
@click.option("--language", type=click.Choice(["en", "zh"]), help="Normalisation rules  [default: detected]")
@click.option("--top-k", type=click.IntRange(0), default=0, show_default=True,
              help="Keep only the K most frequent words (0: all).")
@click.option("--memory", default="auto", show_default=True,
              help="lmplz -S sorting memory: auto, 20%, 1G, ...")
@click.option("--force", is_flag=True, help="Rebuild even if an identical model exists.")
@json_option
@user_errors
def build(corpus, out_dir, order, prune, level, language, top_k, memory, force, as_json):
    """Build a KenLM model from CORPUS (UTF-8 text, one sentence per line) with KenLM's lmplz
    and build_binary. The text is normalised with the transcript rules; Mandarin (or --level
    char) is split into space-separated characters.

    \b
    Examples:
      ds2cli lm build exp/arctic/lm_text.txt --out exp/arctic/lm --order 4 --prune '0 0 1 1'
      ds2cli lm build corpus.txt --top-k 50000
    """
    from ds2cli.decode.config import LMConfig
    from ds2cli.decode.lm_build import build_lm
    from ds2cli.errors import RecipeError

    try:
        config = LMConfig(order=order, prune=prune, level=level, top_k=top_k, memory=memory)
    except ValueError as err:
        given = {"order": order, "top_k": top_k, "level": level, "memory": memory, "prune": prune}
        option = next((k for k in given if str(err).startswith(k)), "prune")  # the message names its field
        raise RecipeError(f"--{option.replace('_', '-')} {given[option]!r}: {err}") from None
    result = build_lm(corpus, out_dir, config, language=language, force=force)
    if as_json:
        echo_json(result.__dict__)
    else:
        click.echo(result.summary())
