"""Connected-word utterances spliced from isolated-word clips, with exact word times.

For measuring alignment timing (the truth is known from the splice) and building small test
corpora (FSDD digits -> TIDIGITS-style digit strings)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass
class Spliced:
    """One spliced utterance. wave shape = (n_samples,); words = [{"word", "start", "end"}] in seconds."""

    wave: np.ndarray
    text: str
    words: list[dict] = field(default_factory=list)
    sample_rate: int = 16000

    @property
    def duration(self) -> float:
        return len(self.wave) / self.sample_rate


def splice(clips: list[tuple[np.ndarray, str]], rng: random.Random, sample_rate: int = 16000,
           gap: tuple[float, float] = (0.05, 0.35), edge: tuple[float, float] = (0.1, 0.3),
           noise: float = 3e-4) -> Spliced:
    """Join (wave, word) clips with random silent gaps (seconds, uniform in `gap`; `edge` before the
    first and after the last) and a little white noise everywhere, so silence is not digital zero.
    Each word's start/end is where its clip was placed."""
    parts, words, t = [], [], 0
    lead = int(rng.uniform(*edge) * sample_rate)
    parts.append(np.zeros(lead, np.float32))
    t = lead
    for i, (wave, word) in enumerate(clips):
        words.append({"word": word, "start": t / sample_rate, "end": (t + len(wave)) / sample_rate})
        parts.append(np.asarray(wave, np.float32))
        t += len(wave)
        pause = int(rng.uniform(*(edge if i == len(clips) - 1 else gap)) * sample_rate)
        parts.append(np.zeros(pause, np.float32))
        t += pause
    wave = np.concatenate(parts)
    noise_rng = np.random.default_rng(rng.getrandbits(32))
    wave = wave + noise * noise_rng.standard_normal(len(wave)).astype(np.float32)
    return Spliced(wave.astype(np.float32), " ".join(w["word"] for w in words), words, sample_rate)


def fsdd_clips(recordings_dir, indices: range | None = None, sample_rate: int = 16000
               ) -> dict[str, list[tuple[Path, str]]]:
    """FSDD files `{digit}_{speaker}_{index}.wav` grouped by speaker -> [(path, digit word)].
    `indices` selects takes (official split: 0-4 test, 5-49 train)."""
    by_speaker: dict[str, list[tuple[Path, str]]] = {}
    for path in sorted(Path(recordings_dir).glob("*.wav")):
        digit, speaker, index = path.stem.split("_")
        if indices is None or int(index) in indices:
            by_speaker.setdefault(speaker, []).append((path, DIGIT_WORDS[int(digit)]))
    return by_speaker


def fsdd_strings(recordings_dir, n: int, rng: random.Random, indices: range | None = None,
                 words: tuple[int, int] = (2, 5), sample_rate: int = 16000) -> list[Spliced]:
    """`n` connected-digit utterances, each of 2-5 digits by one speaker (takes from `indices`)."""
    from ds2cli.audio import read_audio

    groups = fsdd_clips(recordings_dir, indices)
    speakers = sorted(groups)
    cache: dict[Path, np.ndarray] = {}
    out = []
    for _ in range(n):
        pool = groups[rng.choice(speakers)]
        chosen = [pool[rng.randrange(len(pool))] for _ in range(rng.randint(*words))]
        clips = []
        for path, word in chosen:
            if path not in cache:
                cache[path] = read_audio(path, sample_rate)
            clips.append((cache[path], word))
        out.append(splice(clips, rng, sample_rate))
    return out
