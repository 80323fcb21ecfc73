"""The streaming protocol: messages a client may send, how they are checked, and how binary audio
frames become float32 samples at the model's rate.

Client -> server (WebSocket):
    {"type": "start", "sample_rate": 16000, "format": "int16" | "float32", "decoding": {...}, "id": "..."}
    binary frames of little-endian samples (mono), any number of samples per frame
    {"type": "end"}
Server -> client: {"type": "ready", ...}, partial and final results, {"type": "done", ...}, and
{"type": "error", "message": ...} followed by a close frame whose code says what kind of error."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

STREAM_PATH = "/v1/stream"
FORMATS = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
MIN_RATE, MAX_RATE = 8000, 96000  # client sample rates the server resamples from
START_FIELDS = {"type", "sample_rate", "format", "decoding", "id"}
# decoding settings a client may choose per stream (DecodeConfig fields of the search)
DECODING_FIELDS = {"method", "beam_size", "alpha", "beta", "cutoff_prob", "cutoff_top_n", "unk_offset",
                   "beam_threshold", "recombine"}

# WebSocket close codes (RFC 6455 section 7.4.1)
NORMAL, GOING_AWAY, POLICY, UNSUPPORTED, TOO_BIG, INTERNAL, TRY_LATER = 1000, 1001, 1008, 1003, 1009, 1011, 1013


class ProtocolError(Exception):
    """A message the server refuses; `code` is the close code sent after the error message."""

    def __init__(self, message: str, code: int = POLICY):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Start:
    sample_rate: int
    format: str = "int16"
    decoding: dict = field(default_factory=dict)
    id: str | None = None


def parse_json(text: str) -> dict:
    """A text frame -> a dict with a string "type"; ProtocolError otherwise."""
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProtocolError(f"malformed JSON in text message ({err.msg} at character {err.pos})") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError('a text message must be a JSON object with a string "type"')
    return msg


def parse_start(msg: dict) -> Start:
    """Check a start message; unknown fields, rates and formats are refused with a reason."""
    if msg["type"] != "start":
        raise ProtocolError(f'expected a "start" message first, got type {msg["type"]!r}')
    unknown = sorted(set(msg) - START_FIELDS)
    if unknown:
        raise ProtocolError(f"start message: unknown field(s) {', '.join(unknown)} "
                            f"(allowed: {', '.join(sorted(START_FIELDS))})")
    rate = msg.get("sample_rate")
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise ProtocolError("start message: sample_rate must be an integer (samples per second)")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ProtocolError(f"start message: unsupported sample_rate {rate} "
                            f"(supported: {MIN_RATE} to {MAX_RATE} Hz)", UNSUPPORTED)
    fmt = msg.get("format", "int16")
    if fmt not in FORMATS:
        raise ProtocolError(f"start message: unsupported format {fmt!r} (supported: int16, float32)", UNSUPPORTED)
    decoding = msg.get("decoding") or {}
    if not isinstance(decoding, dict):
        raise ProtocolError("start message: decoding must be an object")
    unknown = sorted(set(decoding) - DECODING_FIELDS)
    if unknown:
        raise ProtocolError(f"start message: unknown decoding setting(s) {', '.join(unknown)} "
                            f"(allowed: {', '.join(sorted(DECODING_FIELDS))})")
    utt = msg.get("id")
    if utt is not None and not isinstance(utt, str):
        raise ProtocolError("start message: id must be a string")
    return Start(rate, fmt, dict(decoding), utt)


def parse_after_start(msg: dict) -> None:
    """The only text message allowed after start is {"type": "end"}."""
    if msg["type"] == "start":
        raise ProtocolError("a second start message on the same stream")
    if msg["type"] != "end":
        raise ProtocolError(f'unknown message type {msg["type"]!r} (expected binary audio or "end")')
    if set(msg) != {"type"}:
        raise ProtocolError(f"end message: unknown field(s) {', '.join(sorted(set(msg) - {'type'}))}")


def error_message(message: str) -> dict:
    return {"type": "error", "message": message}


def close_reason(message: str) -> str:
    """A close frame's reason holds at most 123 bytes of UTF-8."""
    data = message.encode("utf-8")
    return message if len(data) <= 123 else data[:120].decode("utf-8", "ignore") + "..."


class AudioConverter:
    """Binary frames of one stream -> float32 samples at the model's rate (streaming resampler
    from soxr when the client's rate differs, so chunk boundaries leave no artefacts)."""

    def __init__(self, start: Start, model_rate: int):
        self.dtype = FORMATS[start.format]
        self.rate, self.model_rate = start.sample_rate, model_rate
        self.samples_in = 0  # client samples received
        self._resampler = None
        if self.rate != model_rate:
            import soxr

            self._resampler = soxr.ResampleStream(self.rate, model_rate, 1, dtype="float32")

    def convert(self, data: bytes) -> np.ndarray:
        """One binary frame -> samples (n,), float32 in [-1, 1] at the model's rate."""
        if len(data) % self.dtype.itemsize:
            raise ProtocolError(f"binary frame of {len(data)} bytes is not a whole number of "
                                f"{self.dtype.name} samples ({self.dtype.itemsize} bytes each)", UNSUPPORTED)
        raw = np.frombuffer(data, dtype=self.dtype)
        if self.dtype.kind == "i":
            wave = raw.astype(np.float32) / 32768.0
        else:
            wave = raw.astype(np.float32)
            if not np.isfinite(wave).all():
                raise ProtocolError("float32 audio contains NaN or infinite samples", UNSUPPORTED)
        self.samples_in += len(wave)
        if self._resampler is not None:
            wave = self._resampler.resample_chunk(wave, last=False)
        return wave

    def flush(self) -> np.ndarray:
        """The resampler's last samples at the end of the stream."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)

    @property
    def seconds_in(self) -> float:
        return self.samples_in / self.rate
