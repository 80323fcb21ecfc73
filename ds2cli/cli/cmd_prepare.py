"""`ds2cli prepare`: corpus on disk -> manifests, alphabet, feature statistics, LM text."""
from __future__ import annotations

import click

from ds2cli.cli.common import echo_json, json_option, quiet_option, user_errors

CORPORA = ["librispeech", "aishell", "fsdd", "arctic", "generic", "kaldi", "synth"]


def _parse_options(values: tuple[str, ...]) -> dict:
    from ds2cli.recipe import apply_overrides

    return apply_overrides({}, list(values), sections=False)


@click.command(short_help="Turn a corpus on disk into manifests, alphabet and feature stats.")
@click.argument("corpus", required=False, type=click.Choice(CORPORA))
@click.argument("data_dir", required=False, type=click.Path(file_okay=False))
@click.option("--recipe", help="Prepare what this recipe's [data] section says (e.g. tiny, librispeech).")
@click.option("--exp-dir", "out_dir", type=click.Path(file_okay=False),
              help="Experiment directory  [default: exp/<recipe or corpus>]")
@click.option("--jobs", "-j", type=click.IntRange(1), help="Parallel processes for reading audio headers.")
@click.option("--units", type=click.Choice(["char", "bpe"]), help="Output units  [default: char]")
@click.option("--vocab-size", type=click.IntRange(2), help="Sentencepiece vocabulary size (--units bpe).")
@click.option("--seed", type=int, help="Seed for random splits and generated corpora.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Corpus-specific option, e.g. -o lang=\"zh\" (synth), -o num_train=500, "
                   "-o 'train_subsets=[\"train-clean-100\"]' (librispeech).")
@click.option("--stats-utterances", type=click.IntRange(1),
              help="Training utterances sampled for the feature mean/std  [default: 500]")
@click.option("--force", is_flag=True, help="Prepare again even if the directory is already prepared.")
@quiet_option
@json_option
@user_errors
def prepare(corpus, data_dir, recipe, out_dir, jobs, units, vocab_size, seed, options, stats_utterances, force,
            quiet, as_json):
    """Prepare a corpus: JSON-lines manifests per split (audio_filepath, duration, text, id,
    speaker), the alphabet (tokenizer.json), feature statistics (feature_stats.json), the training
    text for the LM (lm_text.txt) and a report of skipped items (prepare_report.json).

    \b
    Corpora: librispeech DIR, aishell DIR, fsdd DIR, arctic DIR, generic DIR, kaldi DIR (Kaldi
    data directories: wav.scp, text, utt2spk, segments, spk2gender; shell-command entries are
    refused), synth (no DIR; needs the `synth` extra). Bad items (unreadable audio, missing transcripts, characters
    outside the alphabet, duplicate ids) are skipped, counted and listed in the report.

    \b
    Examples:
      ds2cli prepare --recipe tiny
      ds2cli prepare librispeech /data/LibriSpeech --jobs 8
      ds2cli prepare arctic data/arctic-cathy --exp-dir exp/arctic
      ds2cli prepare kaldi data/speechocean762 -o dev_speakers=10
      ds2cli prepare synth -o lang='"zh"'
    """
    from pathlib import Path

    from ds2cli.data_prep.common import prepare_recipe
    from ds2cli.recipe import load_recipe

    if not recipe and not corpus:
        raise click.UsageError("give a CORPUS (and its DATA_DIR) or --recipe NAME")
    data = {k: v for k, v in {"corpus": corpus, "units": units, "vocab_size": vocab_size,
                              "seed": seed, "stats_utterances": stats_utterances}.items() if v is not None}
    if recipe:
        spec = load_recipe(recipe)
        spec["data"] = {**spec.get("data", {}), **data}
    else:
        spec = {"name": corpus, "data": data}
    spec["data"]["options"] = {**spec["data"].get("options", {}), **_parse_options(options)}
    out = Path(out_dir) if out_dir else Path("exp") / spec["name"]
    report = prepare_recipe(spec, out, data_dir=data_dir, jobs=jobs, force=force, quiet=quiet)
    if as_json:
        echo_json({k: v for k, v in report.__dict__.items() if k != "skipped_items"})
        return
    for item in report.skipped_items[:20]:
        click.echo(f"skipped: {item['message']}", err=True)
    if len(report.skipped_items) > 20:
        click.echo(f"... and {len(report.skipped_items) - 20} more (see {out}/prepare_report.json)", err=True)
    click.echo(report.summary())
