"""`ds2cli score`: WER and CER of hypotheses against references."""
from __future__ import annotations

import click

from ds2cli.cli.common import echo_json, json_option, user_errors


def _counts_line(name: str, c: dict) -> str:
    return (f"{name}: {100 * c['rate']:.2f}%  ({c['errors']} errors / {c['ref_len']}: "
            f"S={c['substitutions']} D={c['deletions']} I={c['insertions']})")


@click.command(short_help="WER/CER of hypotheses against references.")
@click.argument("references", type=click.Path(dir_okay=False))
@click.argument("hypotheses", type=click.Path(dir_okay=False))
@click.option("--language", type=click.Choice(["en", "zh"]),
              help="Scoring rules; zh scores characters.  [default: from the references]")
@click.option("--normalize/--no-normalize", default=True, show_default=True,
              help="Apply the transcript normalisation (case, punctuation) to both sides.")
@click.option("--per-utt", is_flag=True, help="Print every utterance's row.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the full report as JSON here.")
@json_option
@user_errors
def score(references, hypotheses, language, normalize, per_utt, out, as_json):
    """Score HYPOTHESES (a `ds2cli decode` JSONL, or `id text` lines) against REFERENCES (a
    manifest, or `id text` lines), pairing them by id; references first, as in Kaldi's
    compute-wer and jiwer. Prints corpus WER and CER with
    substitution/deletion/insertion counts, and the best, median and worst utterances.
    Mandarin is scored by characters. A reference with no hypothesis counts as an empty one."""
    from ds2cli.fileio import write_json
    from ds2cli.metrics import score_files

    report = score_files(references, hypotheses, language, normalize)
    result = report.as_dict(per_utterance=per_utt or bool(out))
    if out:
        write_json(out, result)
    if as_json:
        echo_json(result)
        return
    if per_utt:
        for u in result["per_utterance"]:
            click.echo(f"{u['id']}\tWER {100 * u['wer']:.1f}\tCER {100 * u['cer']:.1f}\tref: {u['ref']}\thyp: {u['hyp']}")
    click.echo(f"utterances: {result['utterances']}")
    if report.language == "zh":
        click.echo(_counts_line("CER", result["cer"]))
    else:
        click.echo(_counts_line("WER", result["wer"]))
        click.echo(_counts_line("CER", result["cer"]))
    for name in ("best", "median", "worst"):
        if name in result:
            u = result[name]
            click.echo(f"{name:>6}: {u['id']}  WER {100 * u['wer']:.1f}%  ref: {u['ref']!r}  hyp: {u['hyp']!r}")
    if report.missing_hypotheses:
        click.echo(f"warning: {len(report.missing_hypotheses)} reference(s) had no hypothesis "
                   f"(scored as empty), e.g. {report.missing_hypotheses[0]}", err=True)
    if report.extra_hypotheses:
        click.echo(f"warning: {len(report.extra_hypotheses)} hypothesis id(s) not in the references "
                   f"(ignored), e.g. {report.extra_hypotheses[0]}", err=True)
