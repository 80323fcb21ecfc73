"""Endpointing: where one segment of a stream ends and the next begins.

A frame is silent when its most probable token is the CTC blank. A segment closes (and a final
result is emitted for it) after a run of silent frames following speech, or when it reaches its
maximum length; a segment that has heard no speech for a while is dropped and started afresh, so
the search state of a long stream stays bounded. The defaults follow sherpa-onnx's rules
(../shared/docs/SERVING.md): 1.2 s of silence after speech, 2.4 s before any, 20 s at most."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLOSE, DROP = "close", "drop"  # what happens to the segment at a cut


@dataclass(frozen=True)
class EndpointConfig:
    silence_after_speech_ms: float = 1200.0  # silence that closes a segment with speech (0: never)
    silence_before_speech_ms: float = 2400.0  # silence after which a segment without speech restarts (0: never)
    max_segment_s: float = 20.0  # a segment closes at this length whatever it holds (0: no limit)

    def __post_init__(self):
        for name in ("silence_after_speech_ms", "silence_before_speech_ms", "max_segment_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @classmethod
    def never(cls) -> "EndpointConfig":
        """One segment per stream (as offline decoding)."""
        return cls(0.0, 0.0, 0.0)


class Endpointer:
    """Tracks the current segment of one stream, frame by frame."""

    def __init__(self, config: EndpointConfig, frame_seconds: float):
        def frames(seconds: float) -> int:
            return max(1, round(seconds / frame_seconds)) if seconds > 0 else 0

        self.after = frames(config.silence_after_speech_ms / 1000)
        self.before = frames(config.silence_before_speech_ms / 1000)
        self.max_frames = frames(config.max_segment_s)
        self.reset()

    def reset(self) -> None:
        """A new segment begins."""
        self.length = 0  # frames in the segment
        self.silence = 0  # trailing silent frames
        self.speech = False  # whether any frame was not silent

    def scan(self, log_probs: np.ndarray) -> tuple[int, str | None]:
        """Feed the next frames (t, V) of the segment, up to the first cut: (frames consumed,
        CLOSE / DROP at a cut after them, or None when all were consumed without one)."""
        silent = np.asarray(log_probs).argmax(-1) == 0
        for i, quiet in enumerate(silent.tolist()):
            self.length += 1
            self.silence = self.silence + 1 if quiet else 0
            self.speech = self.speech or not quiet
            if self.speech and self.after and self.silence >= self.after:
                return i + 1, CLOSE
            if not self.speech and self.before and self.length >= self.before:
                return i + 1, DROP
            if self.max_frames and self.length >= self.max_frames:
                return i + 1, CLOSE if self.speech else DROP
        return len(silent), None
