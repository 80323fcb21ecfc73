"""`ds2cli decode`: transcribe audio files or a manifest; `--tune` chooses alpha and beta."""
from __future__ import annotations

import json

import click

from ds2cli.cli.common import echo_json, json_option, quiet_option, user_errors
from ds2cli.decode.config import default_help, options_from


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected LO:HI, e.g. 0:3") from None
    return lo, hi


@click.command(short_help="Transcribe audio files or a manifest (greedy or KenLM beam search).")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--manifest", type=click.Path(dir_okay=False), help="Decode every row of this manifest to JSON lines.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the JSON lines here  [default: stdout]")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="Model  [default: the best checkpoint of the recipe, or of the last trained one]")
@click.option("--recipe", help="Use this recipe's checkpoint, LM (built if absent) and [decode] settings.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Recipe override.")
@click.option("--exp-dir", type=click.Path(file_okay=False),
              help="Experiment directory: its checkpoints/best.pt, LM and tuned values  "
                   "[default: exp/<recipe>, else the checkpoint's, else the last trained one]")
@click.option("--lm", type=click.Path(dir_okay=False), help="KenLM model (binary or ARPA)  [default: the recipe's]")
@click.option("--no-lm", is_flag=True, help="Decode without a language model.")
@click.option("--lm-level", type=click.Choice(["word", "char"]),
              help="Word or character LM  [default: detected from the LM and the model]")
@click.option("--method", type=click.Choice(["auto", "greedy", "beam"]),
              help="Search  [default: the recipe's, else beam when there is an LM, else greedy]")
@click.option("--beam-size", type=click.IntRange(1), help=f"Prefixes kept per frame  {default_help('beam_size')}")
@click.option("--alpha", type=float, help=f"LM weight  {default_help('alpha', tuned=True)}")
@click.option("--beta", type=float, help=f"Word insertion bonus  {default_help('beta', tuned=True)}")
@click.option("--cutoff-prob", type=click.FloatRange(0, 1, min_open=True),
              help=f"Character pruning: keep tokens up to this cumulative probability  {default_help('cutoff_prob')}")
@click.option("--cutoff-top-n", type=click.IntRange(1), help=f"... and at most this many per frame  {default_help('cutoff_top_n')}")
@click.option("--unk-offset", type=click.FloatRange(max=0), help=f"Extra log cost of an unknown word  {default_help('unk_offset')}")
@click.option("--nbest", type=click.IntRange(1), help=f"Hypotheses to output per utterance  {default_help('nbest')}")
@click.option("--beam-threshold", type=click.FloatRange(0, min_open=True),
              help=f"Drop candidates this far (natural log) below the frame's best  {default_help('beam_threshold')}")
@click.option("--recombine/--no-recombine", default=None,
              help="Keep only the best of prefixes with the same LM context, unfinished word and last "
                   f"token (frees beam slots)  {default_help('recombine')}")
@click.option("--batch-size", type=click.IntRange(1), help=f"Utterances per network batch  {default_help('batch_size')}")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), help=f"Inference precision  {default_help('precision')}")
@click.option("--threads", type=click.IntRange(1), help="CPU threads  [default: torch's, one per core]")
@click.option("--tune", is_flag=True, help="Search alpha and beta on --manifest (a dev set) and save the best.")
@click.option("--search", type=click.Choice(["grid", "random"]), default="grid", show_default=True,
              help="Tuning: grid or random search.")
@click.option("--alpha-range", default="0:2.5", show_default=True, help="Tuning: alpha LO:HI.")
@click.option("--beta-range", default="-1:4", show_default=True, help="Tuning: beta LO:HI.")
@click.option("--points", type=click.IntRange(1), default=6, show_default=True,
              help="Tuning: grid points per axis, or random trials.")
@click.option("--seed", type=int, default=0, show_default=True, help="Tuning: seed of the random search.")
@quiet_option
@json_option
@user_errors
def decode(files, manifest, out, checkpoint, recipe, overrides, exp_dir, lm, no_lm, lm_level, method,
           beam_size, alpha, beta, cutoff_prob, cutoff_top_n, unk_offset, nbest, beam_threshold, recombine,
           batch_size, device, precision, threads, tune, search, alpha_range, beta_range, points, seed, quiet,
           as_json):
    """Transcribe FILES (any sample rate, mono or multichannel, wav/flac/ogg), or every row of
    --manifest into JSON lines (id, text, score, duration, word timing) that `ds2cli score` reads.

    \b
    The beam search maximises log p_ctc + alpha log p_lm + beta words with a KenLM model (word
    level for English, character level for Mandarin) and DS2 character pruning.
    Bad files are reported on stderr and skipped; the exit code is 1 if any file was bad
    (for a manifest: only if no row could be decoded).

    \b
    Examples:
      ds2cli decode audio.wav
      ds2cli decode --recipe tiny --manifest exp/tiny/manifests/test.jsonl --out hyp.jsonl
      ds2cli decode --recipe tiny --tune --manifest exp/tiny/manifests/dev.jsonl
      ds2cli decode a.flac b.wav --lm lm.bin --beam-size 200 --alpha 0.8 --beta 1.5 --json
    """
    from ds2cli.decode.decoder import load_decoder

    if threads:
        import torch

        torch.set_num_threads(threads)
    if not files and not manifest:
        raise click.UsageError("give audio FILES or --manifest")
    if files and manifest:
        raise click.UsageError("give audio FILES or --manifest, not both")
    if tune and not manifest:
        raise click.UsageError("--tune needs --manifest (a development set with transcripts)")
    options = options_from(click.get_current_context().params)  # the DecodeConfig fields given
    decoder = load_decoder(checkpoint, recipe=recipe, overrides=list(overrides), exp_dir=exp_dir, lm=lm,
                           no_lm=no_lm, lm_level=lm_level, device=device, options=options)
    if tune:
        return _tune(decoder, manifest, search, _range(alpha_range), _range(beta_range), points, seed,
                     quiet, as_json)
    if manifest:
        report = decoder.decode_manifest(manifest, out, with_meta=as_json, quiet=quiet)
        for utt, err in report.errors:
            click.echo(f"skipped {utt}: {err}", err=True)
        click.echo(report.summary(), err=True)
        if report.errors and not report.transcripts:
            raise click.ClickException(f"{manifest}: no row could be decoded")
        return
    done, errors = decoder.decode_files(list(files), quiet=quiet)
    if out:  # the JSON lines a manifest run writes, one per file
        from ds2cli.fileio import write_jsonl

        write_jsonl(out, [t.as_row() for t in done])
    else:
        _print_files(decoder, done, as_json, many=len(files) > 1)
    for path, err in errors:
        click.echo(f"Error: {err}", err=True)
    if errors:
        raise SystemExit(1)


def _print_files(decoder, done, as_json: bool, many: bool) -> None:
    if as_json:
        click.echo(json.dumps({"_meta": decoder.meta}, ensure_ascii=False))
        for t in done:
            click.echo(json.dumps(t.as_row(), ensure_ascii=False))
        return
    for t in done:
        prefix = f"{t.id}\t" if many else ""
        if t.nbest:
            for i, h in enumerate(t.nbest, 1):
                click.echo(f"{prefix}{i}\t{h['score']:.2f}\t{h['text']}")
        else:
            click.echo(f"{prefix}{t.text}")


def _tune(decoder, manifest, search, alpha_range, beta_range, points, seed, quiet, as_json) -> None:
    from pathlib import Path

    from ds2cli.decode.decoder import PARAMS_FILE, relative_to_experiment
    from ds2cli.decode.tune import cached_emissions, grid, tune
    from ds2cli.fileio import write_json

    if decoder.lm is None:
        raise click.UsageError("--tune needs a language model (--lm, or a recipe with an [lm] section)")
    exp_dir = Path(decoder.meta["experiment"])
    ids, refs, ems, skipped = cached_emissions(decoder, manifest, exp_dir / "cache", quiet)
    for utt, err in skipped:
        click.echo(f"skipped {utt}: {err}", err=True)
    if not ems:
        raise click.ClickException(f"{manifest}: no row could be decoded")
    pairs = grid(alpha_range, beta_range, points, search, seed)
    unit = "CER" if decoder.tokenizer.language == "zh" else "WER"

    def report(trial, best):
        if not as_json:
            mark = "  *best" if trial is best else ""
            click.echo(f"alpha {trial.alpha:6.3f}  beta {trial.beta:6.3f}  {unit} {100 * trial.wer:6.2f}%"
                       f"   best {100 * best.wer:.2f}% (alpha {best.alpha:.3f}, beta {best.beta:.3f}){mark}")

    result = tune(ems, refs, decoder.tokenizer, decoder.scorer, decoder.config, pairs, report)
    params = {"alpha": result.alpha, "beta": result.beta, "lm": relative_to_experiment(exp_dir, decoder.lm.path),
              "wer": result.wer, "greedy_wer": result.greedy_wer, "oracle_wer": result.oracle_wer,
              "beam_size": decoder.config.beam_size, "manifest": str(manifest),
              "checkpoint": decoder.meta["checkpoint"], "utterances": len(ems), "trials": len(result.trials)}
    write_json(exp_dir / PARAMS_FILE, params)
    if as_json:
        echo_json({**result.as_dict(), "params_file": str(exp_dir / PARAMS_FILE)})
        return
    click.echo(f"greedy {unit} {100 * result.greedy_wer:.2f}% | best LM {unit} {100 * result.wer:.2f}% "
               f"(alpha {result.alpha}, beta {result.beta}) | oracle {unit} {100 * result.oracle_wer:.2f}% "
               f"over {len(ems)} utterances; saved to {exp_dir / PARAMS_FILE}")


# the model, LM and search options that `stream` and `serve` take exactly as decode defines them
MODEL_AND_SEARCH = ("checkpoint", "recipe", "overrides", "exp_dir", "lm", "no_lm", "lm_level", "method", "beam_size",
                    "alpha", "beta", "cutoff_prob", "cutoff_top_n", "unk_offset", "beam_threshold", "recombine")


def decode_options(*extra: str):
    """Decorator: add decode's model and search options (and the named `extra` ones) to a command,
    with the same names, help and checks."""
    names = MODEL_AND_SEARCH + extra

    def add(func):
        params = [p for p in decode.params if p.name in names]
        func.__click_params__ = getattr(func, "__click_params__", []) + list(reversed(params))
        return func
    return add

