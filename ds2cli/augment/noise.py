"""Noise for augmentation: recordings loaded once (resampled, validated, cached), segments drawn at
a random offset (cropped when long, looped when short), generated white/pink/brown noise, and
mixing at an exact signal-to-noise ratio."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ds2cli.audio import audio_info, read_audio
from ds2cli.errors import AudioError, RecipeError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3", ".opus")
SILENT_POWER = 1e-10  # mean square below this (-100 dBFS) counts as digital silence
MAX_REDRAWS = 8  # tries to find a segment that is not digital silence inside a recording


def power(x: np.ndarray) -> float:
    """Mean square of a signal; float64 accumulation so long signals stay exact."""
    return float(np.dot(x, x)) / len(x) if len(x) else 0.0


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """10 log10(P_signal / P_noise), powers as mean squares."""
    return 10.0 * np.log10(power(signal) / power(noise))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """speech + g * noise with g chosen so that 10 log10(P_speech / P_{g*noise}) == snr exactly.
    shapes = (n,), (n,) -> (n,) float32."""
    scale = np.sqrt(power(speech) / (power(noise) * 10.0 ** (snr / 10.0)))
    out = noise * np.float32(scale)
    out += speech
    return out


def colored_noise(color: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum 1/f^0 (white), 1/f (pink) or 1/f^2 (brown). shape = (n,)"""
    if color == "white":
        return rng.standard_normal(n, dtype=np.float32)
    exponent = {"pink": 0.5, "brown": 1.0}[color]  # on amplitude: power goes as f^(-2 * exponent)
    size = 1 << max(n - 1, 1).bit_length()  # shape at a power-of-two length (fast FFT), then crop
    spec = np.fft.rfft(rng.standard_normal(size, dtype=np.float32))
    freqs = np.arange(len(spec), dtype=np.float64)
    freqs[0] = 1.0
    spec /= freqs ** exponent
    spec[0] = 0.0  # no DC offset
    return np.fft.irfft(spec, size)[:n].astype(np.float32)


@dataclass(frozen=True)
class NoiseClip:
    name: str  # what a record of the draw calls it (the file path, with @offset for manifest segments)
    samples: np.ndarray  # float32, read-only, at the bank's sample rate. shape = (n,)


class NoiseBank:
    """Noise to mix in: recordings (all held in memory as float32, 4 bytes a sample: one hour at
    16 kHz is 230 MB; build the pipeline before forking data workers and they share it), or,
    without recordings, generated colours."""

    def __init__(self, clips: list[NoiseClip], colors: tuple[str, ...], sample_rate: int):
        self.clips = clips
        self.colors = colors
        self.sample_rate = sample_rate

    @property
    def nbytes(self) -> int:
        return sum(c.samples.nbytes for c in self.clips)

    @classmethod
    def generated(cls, colors: tuple[str, ...], sample_rate: int) -> "NoiseBank":
        return cls([], colors, sample_rate)

    @classmethod
    def load(cls, source, sample_rate: int) -> "NoiseBank":
        """Load every recording under a folder, in a manifest, or one audio file. Raises a
        DS2Error naming the file for anything empty, silent, unreadable or at too low a rate."""
        source = Path(source).resolve()  # records name noise files by absolute path
        if source.is_dir():
            files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if not files:
                raise AudioError(f"{source}: no noise recordings found (looked for {', '.join(AUDIO_EXTENSIONS)})")
            segments = [(str(p), 0.0, None) for p in files]
        elif source.is_file() and source.suffix.lower() in AUDIO_EXTENSIONS:
            segments = [(str(source), 0.0, None)]
        elif source.is_file():
            from ds2cli.manifest import read_manifest

            rows = read_manifest(source, require_text=False)
            if not rows:
                raise RecipeError(f"{source}: noise manifest has no rows")
            segments = [(r["audio_filepath"], float(r.get("offset") or 0.0), float(r["duration"]))
                        for r in rows]
        else:
            raise RecipeError(f"{source}: no such noise folder, manifest or audio file")
        clips = [_load_clip(path, offset, duration, sample_rate) for path, offset, duration in segments]
        return cls(clips, (), sample_rate)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """A noise segment of n samples and a record of where it came from. shape = (n,)"""
        if not self.clips:
            color = self.colors[rng.integers(len(self.colors))]
            return colored_noise(color, n, rng), {"noise": f"generated:{color}"}
        for _ in range(MAX_REDRAWS):
            clip = self.clips[rng.integers(len(self.clips))]
            segment, start = _segment(clip.samples, n, rng)
            if power(segment) > SILENT_POWER:
                break  # else: a silent stretch inside a recording; draw again (still deterministic)
        info = {"noise": clip.name, "offset": round(start / self.sample_rate, 6)}
        if len(clip.samples) < n:
            info["looped"] = True
        return segment, info


def _segment(samples: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """n samples from a random offset: a slice of a long clip, or the clip looped from a random
    start when it is shorter than n."""
    length = len(samples)
    if length >= n:
        start = int(rng.integers(0, length - n + 1))
        return samples[start:start + n], start
    start = int(rng.integers(0, length))
    return np.take(samples, np.arange(start, start + n) % length), start


def _load_clip(path: str, offset: float, duration: float | None, sample_rate: int) -> NoiseClip:
    stat = os.stat(path) if os.path.exists(path) else None
    key = (stat.st_mtime_ns, stat.st_size) if stat else None
    samples = _cached_clip(path, key, offset, duration, sample_rate)
    name = path if not offset else f"{path}@{offset:g}"
    return NoiseClip(name, samples)


@functools.lru_cache(maxsize=4096)
def _cached_clip(path: str, _key, offset: float, duration: float | None, sample_rate: int) -> np.ndarray:
    """Read, check and resample one recording; cached per process (keyed on mtime and size), so
    rebuilding a pipeline each epoch or for each split reads nothing twice."""
    native = audio_info(path).sample_rate  # raises AudioError for missing, empty, truncated files
    if native < sample_rate:
        raise AudioError(f"{path}: noise recorded at {native} Hz cannot cover {sample_rate} Hz audio "
                         f"(its upper band would be empty); use noise at {sample_rate} Hz or more")
    samples = read_audio(path, sample_rate, offset=offset, duration=duration)
    if power(samples) <= SILENT_POWER:
        raise AudioError(f"{path}: noise recording is silent (mean power below -100 dBFS)")
    samples.setflags(write=False)  # shared by every pipeline in this process: nobody may change it
    return samples
