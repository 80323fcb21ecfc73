"""The DS2 input: a log power spectrogram (20 ms Hann window, 10 ms hop, 161 bins at 16 kHz),
normalised per bin with a mean and standard deviation taken from a sample of training audio."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
import torch

EPS = 1e-10  # floor under the power so digital silence gives a finite log


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000
    window_ms: float = 20.0
    hop_ms: float = 10.0

    def __post_init__(self):
        from ds2cli.validation import check_fields

        check_fields(self, {"sample_rate": "[1000, 384000]", "window_ms": "[1, 1000]", "hop_ms": "(0, 1000]"})
        if self.hop_length < 1:
            raise ValueError(f"hop_ms {self.hop_ms:g} is less than one sample at {self.sample_rate} Hz")

    @property
    def n_fft(self) -> int:
        return int(round(self.sample_rate * self.window_ms / 1000))  # 320 at 16 kHz

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))  # 160 at 16 kHz

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1  # 161 at 16 kHz

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for `n_samples` samples (centred STFT)."""
        return n_samples // self.hop_length + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        return cls(**d)


def log_spectrogram(wave: torch.Tensor, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """wave shape = (..., n_samples) -> log power, shape = (..., n_frames, n_bins)"""
    window = torch.hann_window(config.n_fft, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave, config.n_fft, config.hop_length, window=window, center=True,
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()
    return torch.log(power + EPS).transpose(-1, -2)


@dataclass
class FeatureStats:
    """Per-bin mean and standard deviation of the log spectrogram. shape = (n_bins,) each."""

    mean: list[float]
    std: list[float]

    def normalise(self, feats: torch.Tensor) -> torch.Tensor:
        """feats shape = (..., n_frames, n_bins)"""
        mean = torch.tensor(self.mean, dtype=feats.dtype, device=feats.device)
        std = torch.tensor(self.std, dtype=feats.dtype, device=feats.device)
        return (feats - mean) / std

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureStats":
        return cls(list(d["mean"]), list(d["std"]))

    @classmethod
    def identity(cls, n_bins: int) -> "FeatureStats":
        return cls([0.0] * n_bins, [1.0] * n_bins)


def compute_stats(waves, config: FeatureConfig = FeatureConfig()) -> FeatureStats:
    """Mean/std over all frames of the given waveforms (an iterable of 1-D float arrays)."""
    total = torch.zeros(config.n_bins, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    count = 0
    for wave in waves:
        feats = log_spectrogram(torch.as_tensor(np.asarray(wave, dtype=np.float32)), config).double()
        total += feats.sum(0)
        total_sq += feats.square().sum(0)
        count += feats.shape[0]
    if count == 0:
        raise ValueError("no audio to compute feature statistics from")
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(1e-8).sqrt()
    return FeatureStats(mean.tolist(), std.tolist())


def stats_from_manifest(rows: list[dict], config: FeatureConfig = FeatureConfig(),
                        max_utterances: int = 500, seed: int = 0) -> FeatureStats:
    """Statistics over a random sample of up to `max_utterances` manifest rows (DS2: "a sample
    of the training set")."""
    from ds2cli.manifest import read_row_audio

    sample = random.Random(seed).sample(rows, min(max_utterances, len(rows)))
    return compute_stats((read_row_audio(r, config.sample_rate) for r in sample), config)
