"""The augmentations, each a small strategy: `apply(x, rng, epoch) -> (x', record)`.

They are pure functions of their input, the epoch and the generator they are handed, so a data
worker in any process gives the same result for the same (seed, epoch, utterance)."""
from __future__ import annotations

import numpy as np

from ds2cli.audio import resample
from ds2cli.augment.config import GainParams, NoiseParams, SpecAugmentParams, SpeedParams
from ds2cli.augment.noise import SILENT_POWER, NoiseBank, mix_at_snr, power


class Noise:
    """Noise at an SNR drawn uniformly from the (scheduled) range for this epoch."""

    def __init__(self, params: NoiseParams, bank: NoiseBank, total_epochs: int | None):
        self.params = params
        self.bank = bank
        self.total_epochs = total_epochs

    def snr_range(self, epoch: int) -> tuple[float, float]:
        """The SNR range at `epoch`: `snr` at epoch 0, moving linearly to `snr_end` at the last
        epoch (total_epochs - 1), held there after."""
        start, end = self.params.snr, self.params.snr_end
        if end is None or not self.total_epochs or self.total_epochs < 2:
            return start
        t = min(max(epoch / (self.total_epochs - 1), 0.0), 1.0)
        return (start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))

    def apply(self, wave: np.ndarray, rng: np.random.Generator, epoch: int) -> tuple[np.ndarray, dict]:
        lo, hi = self.snr_range(epoch)
        snr = float(rng.uniform(lo, hi))
        if power(wave) <= SILENT_POWER:
            return wave, {"type": "noise", "skipped": "silent utterance (SNR undefined)"}
        segment, where = self.bank.draw(len(wave), rng)
        return mix_at_snr(wave, segment, snr), {"type": "noise", **where, "snr": round(snr, 3)}


class Speed:
    """Speed perturbation by resampling (torchaudio's band-limited sinc): playing audio recorded
    at sr * factor back at sr, so 1.1 is 10% faster and 10% higher."""

    def __init__(self, params: SpeedParams, sample_rate: int):
        self.params = params
        self.sample_rate = sample_rate

    def apply(self, wave: np.ndarray, rng: np.random.Generator, epoch: int) -> tuple[np.ndarray, dict]:
        factor = float(self.params.factors[rng.integers(len(self.params.factors))])
        if factor != 1.0:
            wave = resample(wave, int(round(self.sample_rate * factor)), self.sample_rate)
        return wave, {"type": "speed", "speed": factor}


class Gain:
    def __init__(self, params: GainParams):
        self.params = params

    def apply(self, wave: np.ndarray, rng: np.random.Generator, epoch: int) -> tuple[np.ndarray, dict]:
        db = float(rng.uniform(*self.params.db))
        return wave * np.float32(10.0 ** (db / 20.0)), {"type": "gain", "gain_db": round(db, 3)}


class SpecAugment:
    """Frequency and time masks. Our own few lines rather than torchaudio's FrequencyMasking /
    TimeMasking, because those draw from torch's global generator and could not be reproduced
    from (seed, epoch, utterance)."""

    def __init__(self, params: SpecAugmentParams):
        self.params = params

    def apply(self, feats, rng: np.random.Generator, epoch: int):
        """feats shape = (T, F) -> (T, F), a new tensor."""
        p = self.params
        n_frames, n_bins = feats.shape
        out = feats.clone()
        value = float(feats.mean()) if p.mask_value == "mean" else float(p.mask_value)
        masks = []
        for _ in range(p.freq_masks):
            width = int(rng.integers(0, min(p.freq_width, n_bins) + 1))
            start = int(rng.integers(0, n_bins - width + 1))
            out[:, start:start + width] = value
            masks.append({"axis": "freq", "start": start, "width": width})
        max_width = min(p.time_width, int(p.max_time_fraction * n_frames))
        for _ in range(p.time_masks):
            width = int(rng.integers(0, max_width + 1))
            start = int(rng.integers(0, n_frames - width + 1))
            out[start:start + width, :] = value
            masks.append({"axis": "time", "start": start, "width": width})
        return out, {"type": "specaugment", "masks": masks}
