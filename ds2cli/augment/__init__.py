"""Data augmentation as DS2 did it (noise at a random SNR on a share of utterances, fresh every
epoch) plus speed perturbation, gain and SpecAugment; one pipeline for on-the-fly training and
the offline `ds2cli augment` command.

    cfg = AugmentConfig.from_list(recipe["augment"]).with_overrides(["noise.prob=0.4"])
    pipeline = build_pipeline(cfg, sample_rate=16000, noise_dir_or_manifest="noise/", total_epochs=E)
    wave, applied = pipeline.apply_waveform(wave, seed=seed, epoch=epoch, utt_id=row["id"])
    feats = pipeline.apply_features(feats, seed=seed, epoch=epoch, utt_id=row["id"])
"""
from ds2cli.augment.config import (AugmentConfig, AugmentSpec, GainParams, NoiseParams,
                                   SpecAugmentParams, SpeedParams)
from ds2cli.augment.noise import NoiseBank, colored_noise, mix_at_snr, snr_db
from ds2cli.augment.offline import AugmentReport, augment_manifest
from ds2cli.augment.pipeline import Pipeline, build_pipeline, derive_rng

__all__ = ["AugmentConfig", "AugmentSpec", "NoiseParams", "SpeedParams", "GainParams",
           "SpecAugmentParams", "NoiseBank", "colored_noise", "mix_at_snr", "snr_db", "Pipeline",
           "build_pipeline", "derive_rng", "AugmentReport", "augment_manifest"]
