"""Reading audio: the only module that touches audio files. Everything comes out as mono float32
at the requested sample rate."""
from __future__ import annotations

import functools
import io
import os
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from ds2cli.errors import AudioError

SAMPLE_RATE = 16000  # DS2 works on 16 kHz audio
MIN_SECONDS = 0.025  # shorter audio gives no spectrogram frame worth the name (and breaks the STFT)
_WAV_DATA_SHORT = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.M)  # libsndfile's WAV report


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path, verify: bool = True) -> AudioInfo:
    """Read length and rate from the file header. With `verify`, also check that the file holds
    what its header promises (decode the last frame; compare a WAV data chunk with the file size),
    which catches truncated files, and that it is not shorter than MIN_SECONDS; a floating-point
    file is also read through for NaN or infinite samples (integer PCM cannot hold them)."""
    _require_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            info = AudioInfo(f.samplerate, f.frames, f.channels)
            if info.frames <= 0:
                raise AudioError(f"{path}: empty audio (0 samples)")
            if info.frames < MIN_SECONDS * info.sample_rate:
                raise AudioError(f"{path}: audio too short ({info.frames} samples; at least "
                                 f"{MIN_SECONDS * 1000:g} ms needed)")
            if verify:
                _check_container(f, path)
                try:
                    f.seek(info.frames - 1)
                    complete = len(f.read(1)) == 1
                except (sf.LibsndfileError, RuntimeError):
                    complete = False
                if not complete:
                    raise AudioError(f"{path}: truncated audio (header says {info.frames} samples, "
                                     "the end cannot be read)")
                if f.subtype in ("FLOAT", "DOUBLE"):
                    f.seek(0)
                    for block in f.blocks(65536, dtype="float32"):
                        if not np.isfinite(block).all():
                            raise AudioError(f"{path}: audio contains NaN or infinite samples")
    except AudioError:
        raise
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        raise AudioError(f"{path}: unreadable audio ({_short(err)})") from None
    return info


def read_audio(path, sample_rate: int = SAMPLE_RATE, offset: float = 0.0,
               duration: float | None = None) -> np.ndarray:
    """Return samples as float32 mono at `sample_rate`. shape = (n_samples,)

    `offset` and `duration` (seconds) select a segment, as in NeMo manifests. A truncated WAV
    (its data chunk promises more than the file holds) is an AudioError, as in `audio_info`."""
    _require_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            native = f.samplerate
            _check_container(f, path)
            start = int(round(offset * native))
            if f.frames == 0:
                raise AudioError(f"{path}: empty audio (0 samples)")
            if start >= f.frames:
                raise AudioError(f"{path}: offset {offset:g} s is past the end of the audio "
                                 f"({f.frames / native:.2f} s)")
            if start:
                f.seek(start)
            frames = -1 if duration is None else int(round(duration * native))
            data = f.read(frames, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        raise AudioError(f"{path}: unreadable audio ({_short(err)})") from None
    if data.size == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if data.shape[0] < MIN_SECONDS * native:
        raise AudioError(f"{path}: audio too short ({data.shape[0]} samples; at least "
                         f"{MIN_SECONDS * 1000:g} ms needed)")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(wave).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return resample(wave, native, sample_rate)


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's sinc interpolation). shape = (n,) -> (n * new/orig,)"""
    if orig_rate == new_rate:
        return np.ascontiguousarray(wave, dtype=np.float32)
    import torch

    with torch.inference_mode():
        out = _resampler(orig_rate, new_rate)(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)))
    return out.numpy()


@functools.lru_cache(maxsize=8)
def _resampler(orig_rate: int, new_rate: int):
    """The filter kernel is built once per rate pair (building it costs more than applying it)."""
    import torchaudio.transforms as T

    return T.Resample(orig_rate, new_rate)


def write_audio(path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM (WAV or FLAC by extension), atomically."""
    from ds2cli.fileio import atomic_path

    fmt = "FLAC" if str(path).lower().endswith(".flac") else "WAV"
    buffer = io.BytesIO()  # encoded in memory: a full disk is then an OSError, not libsndfile's "System error."
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16", format=fmt)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def _check_container(f: sf.SoundFile, path) -> None:
    """A truncated file that libsndfile would read without complaint: a WAV whose data chunk
    promises more than the file holds, or an Ogg stream cut before its last page."""
    short = _WAV_DATA_SHORT.search(f.extra_info)
    if short and int(short.group(2)) < int(short.group(1)):
        raise AudioError(f"{path}: truncated audio (data chunk is {short.group(1)} bytes, "
                         f"the file holds {short.group(2)})")
    if f.format == "OGG":
        _check_ogg_end(path)


def _check_ogg_end(path) -> None:
    """An Ogg stream ends with a complete page flagged end-of-stream; a cut file does not (and
    libsndfile reads it without complaint, up to its last whole page)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 65536 - 282))  # a page is at most 27 + 255 + 255 * 255 bytes
        tail = f.read()
    at = tail.rfind(b"OggS")
    while at >= 0 and not (len(tail) >= at + 27 and tail[at + 4] == 0):
        at = tail.rfind(b"OggS", 0, at)
    if at < 0:
        raise AudioError(f"{path}: truncated audio (no complete Ogg page at the end)")
    segments = tail[at + 26] if len(tail) > at + 26 else 0
    table = tail[at + 27: at + 27 + segments]
    complete = len(table) == segments and at + 27 + segments + sum(table) == len(tail)
    if not complete or not tail[at + 5] & 0x04:
        raise AudioError(f"{path}: truncated audio (the Ogg stream has no end-of-stream page)")


def _require_file(path) -> None:
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise AudioError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied")


def _short(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
