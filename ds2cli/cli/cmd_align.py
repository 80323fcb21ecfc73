"""`ds2cli align`: CTC forced alignment, word timestamps, and filtering of bad transcripts."""
from __future__ import annotations

import re
from pathlib import Path

import click

from ds2cli.cli.common import echo_json, json_option, quiet_option, user_errors

_TEST_SET = re.compile(r"(^|[^a-z])(test|eval)", re.IGNORECASE)


def default_out(manifest: Path) -> Path:
    """exp/<recipe>/align/<split> for exp/<recipe>/manifests/<split>.jsonl, else align-<stem> beside it."""
    manifest = manifest.resolve()
    if manifest.parent.name == "manifests":
        return manifest.parent.parent / "align" / manifest.stem
    return manifest.parent / f"align-{manifest.stem}"


def looks_like_test_set(manifest: Path) -> bool:
    return bool(_TEST_SET.search(manifest.stem))


@click.command(short_help="CTC forced alignment, timestamps and filtering of bad transcripts.")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--checkpoint", "-c", type=click.Path(dir_okay=False, path_type=Path),
              help="Model checkpoint.  [default: exp/<last trained recipe>/checkpoints/best.pt]")
@click.option("--exp-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Experiment directory whose checkpoints/best.pt aligns (instead of --checkpoint).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder.  [default: exp/<recipe>/align/<split> for an experiment's "
                   "manifest, else align-<name> beside the manifest]")
@click.option("--filter", "do_filter", is_flag=True,
              help="Write kept.jsonl and rejected.jsonl (with the reason for each rejection).")
@click.option("--thresholds", metavar="SPEC",
              help="Filter by feature limits, e.g. 'greedy_cer<=0.5,score_gap<=0.5'.  "
                   "[default with --filter and no --filter-model: those two]")
@click.option("--filter-model", type=click.Path(dir_okay=False, path_type=Path),
              help="Filter with a classifier saved by --fit-filter (or a thresholds JSON).")
@click.option("--fit-filter", is_flag=True,
              help="Instead of aligning: fit a logistic-regression filter on MANIFEST's transcripts "
                   "(taken as correct) against corrupted copies of them. Use data the model was not "
                   "trained on (a dev split).")
@click.option("--out-filter", type=click.Path(dir_okay=False, path_type=Path),
              help="Where --fit-filter saves the filter.  [default: OUT/filter.json]")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the corruptions of --fit-filter.")
@click.option("--boundaries", type=click.Choice(["pauses", "spikes"]), default="pauses", show_default=True,
              help="Word edges: CTC spikes with calibrated offsets ('spikes'), then moved to the edges "
                   "of a silent pause between words where there is one ('pauses').")
@click.option("--ctm/--no-ctm", default=True, show_default=True, help="Also write word timings as words.ctm.")
@click.option("--tokens/--no-tokens", default=True, show_default=True,
              help="Include per-token spans and posteriors in alignments.jsonl.")
@click.option("--allow-test", is_flag=True, help="Allow filtering (or fitting on) a test set.")
@click.option("--batch-size", "-b", type=click.IntRange(1), default=16, show_default=True,
              help="Utterances per network batch.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(0), default=0,
              help="CPU threads for the network (0: PyTorch's default, one per core). On a busy "
                   "machine 1 can be much faster.")
@quiet_option
@json_option
@user_errors
def align(manifest, checkpoint, exp_dir, out_dir, do_filter, thresholds, filter_model, fit_filter, out_filter, seed,
          boundaries, ctm, tokens, allow_test, batch_size, device, threads, quiet, as_json):
    """Force-align each transcript in MANIFEST to its audio with a trained CTC model (the Viterbi
    path) and write alignments.jsonl: character and word start/end times, per-token posteriors,
    and the alignment features (mean/min log posterior along the path, gap to the best
    unconstrained path, greedy CER, characters per second, blank share, duration). Word timings
    also go to words.ctm.

    With --filter, utterances whose alignment looks wrong are rejected (DS2 section 5): by
    feature thresholds, or by a classifier fitted with --fit-filter. Utterances that cannot be
    aligned (unreadable audio, characters outside the alphabet, a transcript too long for the
    audio) are always listed with their reason and never crash the run. Test sets (a manifest
    named like test*.jsonl) are not filtered unless --allow-test.

    \b
    Examples:
      ds2cli align exp/arctic/manifests/dev.jsonl --fit-filter
      ds2cli align exp/arctic/manifests/train.jsonl --filter --filter-model exp/arctic/align/dev/filter.json
      ds2cli align data.jsonl -c model.pt --out aligned --filter --thresholds 'greedy_cer<=0.4'
    """
    from ds2cli.align.aligner import align_to_dir
    from ds2cli.align.forced import Boundaries
    from ds2cli.inference import Recognizer
    from ds2cli.manifest import read_manifest
    from ds2cli.stages import last_trained_checkpoint, trained_checkpoint

    flt = _check_options(manifest, do_filter, thresholds, filter_model, fit_filter, allow_test)
    if threads:
        import torch

        torch.set_num_threads(threads)
    if checkpoint and exp_dir:
        raise click.UsageError("give --checkpoint or --exp-dir, not both")
    if exp_dir:
        checkpoint = trained_checkpoint(exp_dir)
    rows = read_manifest(manifest)  # a bad manifest fails before the model loads
    recognizer = Recognizer.from_checkpoint(checkpoint or last_trained_checkpoint(), device=device)
    out_dir = out_dir or default_out(manifest)
    if fit_filter:
        _fit(rows, recognizer, out_filter or out_dir / "filter.json", seed, batch_size, quiet, as_json)
        return
    summary = align_to_dir(rows, recognizer, out_dir, flt, ctm, tokens, batch_size, quiet,
                           Boundaries(snap=boundaries == "pauses"), str(manifest))
    if as_json:
        echo_json(summary)
        return
    failed = ", ".join(f"{reason}: {n}" for reason, n in summary["failed"].items())
    line = (f"aligned {summary['aligned']}/{summary['utterances']} utterances "
            f"({summary['audio_seconds'] / 60:.1f} min audio, {summary['realtime_factor']:.1f}x real time)")
    if failed:
        line += f"; failed: {failed}"
    if flt is not None:
        line += f"; kept {summary['kept']}, rejected {summary['rejected']}"
    click.echo(f"{line} -> {out_dir}")


def _check_options(manifest, do_filter, thresholds, filter_model, fit_filter, allow_test):
    """Usage errors before anything loads; returns the filter (None without --filter)."""
    from ds2cli.align.filter import DEFAULT_THRESHOLDS, ThresholdFilter, load_filter

    if fit_filter and (do_filter or thresholds or filter_model):
        raise click.UsageError("--fit-filter fits a filter; apply it in a second run with --filter --filter-model")
    if (thresholds or filter_model) and not do_filter:
        raise click.UsageError("--thresholds and --filter-model need --filter")
    if thresholds and filter_model:
        raise click.UsageError("give --thresholds or --filter-model, not both")
    if (do_filter or fit_filter) and looks_like_test_set(manifest) and not allow_test:
        raise click.UsageError(f"{manifest} looks like a test set; test sets are not filtered or fitted "
                               "on (its results would not be comparable with other models). "
                               "Pass --allow-test to do it anyway.")
    if not do_filter:
        return None
    if filter_model:
        return load_filter(filter_model)
    try:
        return ThresholdFilter.parse(thresholds or DEFAULT_THRESHOLDS)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--thresholds") from None


def _fit(rows, recognizer, target, seed, batch_size, quiet, as_json):
    from ds2cli.align.aligner import fit_filter
    from ds2cli.align.filter import save_filter

    result = fit_filter(rows, recognizer, seed, batch_size, quiet)
    save_filter(target, result.filter)
    summary = {"filter": str(target), "utterances": result.utterances, "failed": result.failed,
               "seconds": round(result.seconds, 2), **result.filter.info}
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"fitted {result.filter.describe()} on {result.utterances} utterances + corrupted "
                   f"copies: keeps {100 * summary['fit_kept_correct']:.1f}% of correct, rejects "
                   f"{100 * summary['fit_rejected_wrong']:.1f}% of wrong (greedy CER of the correct ones "
                   f"{100 * summary['fit_clean_greedy_cer']:.1f}%) -> {target}")
