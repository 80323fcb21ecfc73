"""Audio files through the streaming path, chunk by chunk, optionally paced like a live source:
what `ds2cli stream` runs (and how to check a streaming model without a server)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ds2cli.stream.recognizer import StreamRecognizer


@dataclass
class FileResult:
    """One streamed file: its finals, and how long the audio and the compute took."""

    path: str
    finals: list[dict] = field(default_factory=list)
    audio_seconds: float = 0.0
    compute_seconds: float = 0.0  # time spent in the recogniser (not in pacing)

    @property
    def text(self) -> str:
        return " ".join(f["text"] for f in self.finals if f["text"])


def chunks_of(wave: np.ndarray, chunk_samples: int) -> Iterator[np.ndarray]:
    for start in range(0, len(wave), chunk_samples):
        yield wave[start:start + chunk_samples]


def stream_wave(recognizer: StreamRecognizer, wave: np.ndarray, chunk_ms: float = 160.0,
                realtime: bool = False, result: FileResult | None = None) -> Iterator[dict]:
    """Feed `wave` (at the model's rate) in chunks of `chunk_ms`; yield the events as they come.
    With `realtime`, chunk i is fed at the soonest i * chunk_ms after the first. `result`
    (optional) collects the finals and the timings."""
    rate = recognizer.model.sample_rate
    size = max(1, int(round(chunk_ms * rate / 1000)))
    result = result if result is not None else FileResult("")
    result.audio_seconds = len(wave) / rate
    start = time.perf_counter()
    for i, chunk in enumerate(chunks_of(wave, size)):
        if realtime:
            time.sleep(max(0.0, start + i * size / rate - time.perf_counter()))
        t0 = time.perf_counter()
        events = recognizer.accept(chunk)
        result.compute_seconds += time.perf_counter() - t0
        yield from _collect(events, result)
    t0 = time.perf_counter()
    events = recognizer.finish()
    result.compute_seconds += time.perf_counter() - t0
    yield from _collect(events, result)


def _collect(events: list[dict], result: FileResult) -> Iterator[dict]:
    for event in events:
        if event["type"] == "final":
            result.finals.append(event)
        yield event
