"""The augmentation pipeline the data loader (on the fly) and `ds2cli augment` (offline) share.

Every random choice for an utterance comes from a numpy Generator seeded by a stable hash of
(seed, epoch, utterance id, step type): the same triple gives the same noise in any process and
after a resume, a new epoch gives fresh noise, and each step has its own stream, so switching
one step on or off does not change what the others draw."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ds2cli.augment.config import AugmentConfig
from ds2cli.augment.noise import NoiseBank
from ds2cli.augment.transforms import Gain, Noise, SpecAugment, Speed
from ds2cli.errors import RecipeError


def derive_rng(seed: int, epoch: int, utt_id: str, stream: str) -> np.random.Generator:
    """A generator that depends only on its arguments (blake2b, not Python's per-process salted
    hash())."""
    digest = hashlib.blake2b(f"{seed}\x1f{epoch}\x1f{utt_id}\x1f{stream}".encode("utf-8"),
                             digest_size=16).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))


class Pipeline:
    """Built by `build_pipeline`. Waveform steps run in config order, then feature steps."""

    def __init__(self, config: AugmentConfig, sample_rate: int, steps: list[tuple],
                 noise_source: str | None = None):
        self.config = config
        self.sample_rate = sample_rate
        self.noise_source = noise_source  # the recordings' folder/manifest; None: generated noise
        # (spec, strategy) pairs for each stage
        self.wave_steps = [(s, t) for s, t in steps if s.stage == "wave"]
        self.feature_steps = [(s, t) for s, t in steps if s.stage == "feats"]

    def apply_waveform(self, wave: np.ndarray, seed: int, epoch: int, utt_id: str) -> tuple[np.ndarray, list[dict]]:
        """wave shape = (n,) float32 at `sample_rate` -> (augmented wave (m,) float32, records of
        what was applied: e.g. {"type": "noise", "noise": path, "offset": s, "snr": dB}). m != n
        only under speed perturbation. The input array is never modified."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"apply_waveform expects a 1-D waveform, got shape {wave.shape}")
        applied = []
        if len(wave) == 0:
            return wave, applied
        for spec, step in self.wave_steps:
            rng = derive_rng(seed, epoch, utt_id, spec.type)
            if not rng.random() < spec.prob:  # always drawn, so prob 1.0 and 0.9 share a stream
                continue
            wave, record = step.apply(wave, rng, epoch)
            applied.append(record)
        return wave, applied

    def apply_features(self, feats, seed: int, epoch: int, utt_id: str):
        """feats shape = (T, F) torch tensor -> (T, F); the same tensor when no feature step is
        configured, else a new one."""
        return self.apply_features_with_record(feats, seed, epoch, utt_id)[0]

    def apply_features_with_record(self, feats, seed: int, epoch: int, utt_id: str):
        """As `apply_features`, also returning the records (e.g. the masks drawn)."""
        if feats.dim() != 2:
            raise ValueError(f"apply_features expects features of shape (T, F), got {tuple(feats.shape)}")
        applied = []
        for spec, step in self.feature_steps:
            rng = derive_rng(seed, epoch, utt_id, spec.type)
            if not rng.random() < spec.prob:
                continue
            feats, record = step.apply(feats, rng, epoch)
            applied.append(record)
        return feats, applied

    def describe(self) -> str:
        return self.config.describe()


def build_pipeline(config: AugmentConfig, sample_rate: int = 16000, noise_dir_or_manifest=None,
                   total_epochs: int | None = None) -> Pipeline:
    """Validate everything and load the noise now, so bad input fails before any work starts.

    `noise_dir_or_manifest`: a folder of recordings, a manifest of them, or one audio file; None
    means generated noise (the `colors` parameter). `total_epochs` spans an SNR schedule
    (`snr_end`); the offline command passes its number of copies."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise RecipeError(f"sample rate must be a positive integer, got {sample_rate!r}")
    steps = []
    for spec in config.specs:
        if spec.type == "noise":
            if spec.params.snr_end is not None and not total_epochs:
                raise RecipeError("augment noise: snr_end schedules the SNR over training, "
                                  "so the number of epochs must be given")
            if noise_dir_or_manifest is not None and spec.prob > 0:
                bank = NoiseBank.load(noise_dir_or_manifest, sample_rate)
            else:
                bank = NoiseBank.generated(spec.params.colors, sample_rate)
            steps.append((spec, Noise(spec.params, bank, total_epochs)))
        elif spec.type == "speed":
            steps.append((spec, Speed(spec.params, sample_rate)))
        elif spec.type == "gain":
            steps.append((spec, Gain(spec.params)))
        elif spec.type == "specaugment":
            steps.append((spec, SpecAugment(spec.params)))
    source = None if noise_dir_or_manifest is None else str(Path(noise_dir_or_manifest).resolve())
    return Pipeline(config, sample_rate, steps, noise_source=source)
