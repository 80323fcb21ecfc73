"""`ds2cli augment`: write noise/speed-augmented copies of a manifest's audio."""
from __future__ import annotations

import click

from ds2cli.cli.common import echo_json, json_option, quiet_option, user_errors

# The offline default noises every copy (a noisy copy is what one asks this command for);
# training's default follows DS2 (40% of utterances).
DEFAULT_STEPS = [{"type": "noise", "prob": 1.0, "params": {"snr": [0, 30]}}]


@click.command("augment", short_help="Write noise/speed-augmented copies of a manifest's audio.")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Writes OUT_DIR/audio/*.wav, OUT_DIR/manifest.jsonl and OUT_DIR/augment.json.")
@click.option("--copies", default=1, show_default=True, type=click.IntRange(min=1),
              help="Augmented copies per utterance; copy k is what training sees at epoch k.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--noise-dir", type=click.Path(exists=True, file_okay=False),
              help="Folder of noise recordings (default: generated white/pink/brown noise).")
@click.option("--noise-manifest", type=click.Path(exists=True, dir_okay=False),
              help="Manifest of noise recordings (instead of --noise-dir).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="TOML file with [[augment]] tables (a recipe works).  [default: noise on every "
                   "copy, SNR 0-30 dB]")
@click.option("--augment", "overrides", multiple=True, metavar="TYPE.KEY=VALUE",
              help="Override or add a step, e.g. noise.snr=[10,20], noise.prob=0.4, "
                   "speed.factors=[0.9,1.1], gain.prob=0 (repeatable; values are TOML).")
@click.option("--sample-rate", default=16000, show_default=True, type=click.IntRange(min=1000))
@click.option("--force", is_flag=True, help="Redo even if OUT_DIR holds a finished run.")
@quiet_option
@json_option
@user_errors
def augment(manifest, out_dir, copies, seed, noise_dir, noise_manifest, config_path, overrides,
            sample_rate, force, quiet, as_json):
    """Write augmented copies of every utterance in MANIFEST, with the same code (and, for the
    same seed, the same noise) as on-the-fly augmentation in training.

    Each output row records what was applied (noise file, offset, SNR, speed, gain). Unreadable
    rows are skipped, counted and reported; the exit code is non-zero if nothing was written.

    \b
    Example:
      ds2cli augment data/train.jsonl --out-dir data/train_noisy --copies 2 \\
          --noise-dir noise/ --augment noise.snr=[0,20] --augment speed.prob=1
    """
    from ds2cli.augment import AugmentConfig, augment_manifest, build_pipeline

    if noise_dir and noise_manifest:
        raise click.UsageError("give --noise-dir or --noise-manifest, not both")
    config = (AugmentConfig.from_toml(config_path) if config_path
              else AugmentConfig.from_list(DEFAULT_STEPS)).with_overrides(overrides)
    pipeline = build_pipeline(config, sample_rate=sample_rate,
                              noise_dir_or_manifest=noise_dir or noise_manifest, total_epochs=copies)
    report = augment_manifest(manifest, out_dir, pipeline, copies=copies, seed=seed, quiet=quiet,
                              force=force)
    if as_json:
        echo_json(report.to_dict())
    else:
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        click.echo(report.summary())
    if report.written == 0:
        raise click.ClickException(f"{manifest}: nothing written ({report.skipped} of {report.rows} rows unreadable)")
