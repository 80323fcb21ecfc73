"""Silence at the edges of an utterance before it is recognised.

Clips cut tight around the speech (FSDD ships its digits so, and voice-activity detectors cut
alike) leave the network's first and last output frames without the context its convolutions and
recurrent layers learnt from: a model trained on audio with silence at its edges then drops or
garbles the first and last words. The decoder adds `edge_pad_ms` of quiet at each end, at least
half the convolutional front end's receptive field, at the clip's own noise floor (its quietest
10 ms; digital silence where the clip has some), so that a model hears the kind of silence the
clip itself has."""
from __future__ import annotations

import numpy as np


def receptive_field_frames(time_specs: list[tuple[int, int, int]]) -> int:
    """Input frames one output frame of the convolutions sees: 1 + sum (k_i - 1) x stride below i.
    `time_specs` holds (kernel, stride, padding) per layer, in order."""
    field, jump = 1, 1
    for kernel, stride, _ in time_specs:
        field += (kernel - 1) * jump
        jump *= stride
    return field


def edge_pad_samples(edge_pad_ms: float, time_specs, hop_ms: float, sample_rate: int) -> int:
    """Samples of quiet at each end: `edge_pad_ms`, raised to half the receptive field (0: none)."""
    if edge_pad_ms <= 0:
        return 0
    half_field_ms = (receptive_field_frames(time_specs) // 2 + 1) * hop_ms
    return int(round(max(edge_pad_ms, half_field_ms) * sample_rate / 1000))


def pad_edges(wave: np.ndarray, samples: int, sample_rate: int = 16000) -> np.ndarray:
    """wave (n,) -> (samples + n + samples,): quiet noise at the clip's noise floor at each end,
    the same for the same clip (seeded by its length)."""
    if samples <= 0:
        return wave
    frame = max(1, sample_rate // 100)
    n = len(wave) // frame * frame
    rms = np.sqrt((wave[:n].reshape(-1, frame).astype(np.float64) ** 2).mean(1)) if n else np.array([0.0])
    level = float(rms.min())
    rng = np.random.default_rng(len(wave))
    pad = lambda: (rng.standard_normal(samples) * level).astype(np.float32)  # noqa: E731
    return np.concatenate([pad(), np.asarray(wave, dtype=np.float32), pad()])
