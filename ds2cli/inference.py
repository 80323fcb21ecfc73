"""Running a trained network: audio -> normalised features -> CTC log-probabilities (emissions).

Shared by decode and align. Utterances are batched through the network; long audio is cut into
overlapping chunks whose centres are stitched back together, so memory stays bounded and the
bidirectional layers still see context on both sides of every kept frame."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from ds2cli.checkpoint import load_checkpoint, model_from_checkpoint
from ds2cli.features import FeatureConfig, FeatureStats, log_spectrogram
from ds2cli.text import tokenizer_from_dict

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class _Piece:
    utt: int  # index of the utterance
    start: int  # first input frame fed to the network (context included)
    keep_from: int  # first input frame whose output is kept
    keep_to: int  # end (exclusive) of kept input frames
    end: int  # end (exclusive) of input frames fed


class Recognizer:
    """A network with its tokenizer and feature pipeline, ready for inference."""

    def __init__(self, model, tokenizer, feature_config: FeatureConfig, feature_stats: FeatureStats,
                 device: str = "cpu", precision: str = "fp32", checkpoint_path: str | None = None):
        from ds2cli.trainer import resolve_device

        device = resolve_device(str(device))  # a bad name or a missing GPU says so, before the model moves
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and not str(device).startswith("cuda"):
            raise ValueError("fp16 inference needs a GPU; use bf16 on the CPU")
        self.model = model.to(device).eval()
        self.tokenizer, self.feature_config, self.feature_stats = tokenizer, feature_config, feature_stats
        self.device, self.precision, self.checkpoint_path = torch.device(device), precision, checkpoint_path

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", precision: str = "fp32") -> "Recognizer":
        ckpt = load_checkpoint(path)
        return cls(model_from_checkpoint(ckpt), tokenizer_from_dict(ckpt["tokenizer"]),
                   FeatureConfig.from_dict(ckpt["feature_config"]),
                   FeatureStats.from_dict(ckpt["feature_stats"]), device, precision, str(path))

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame (the feature hop times the network's time stride)."""
        return self.feature_config.hop_ms / 1000 * self.model.time_stride

    def features(self, wave: np.ndarray) -> torch.Tensor:
        """wave (n_samples,) at the feature sample rate -> normalised features (T, F)"""
        feats = log_spectrogram(torch.as_tensor(wave, dtype=torch.float32), self.feature_config)
        return self.feature_stats.normalise(feats)

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    @torch.inference_mode()
    def emissions(self, waves: list[np.ndarray], batch_size: int = 16,
                  chunk_seconds: float = 30.0, context_seconds: float = 2.0) -> list[torch.Tensor]:
        """CTC log-probabilities for each waveform. Returns tensors of shape (T_i', V), float32 on
        the CPU. Audio longer than `chunk_seconds` is split into chunks with `context_seconds` of
        overlap on each side."""
        feats = [self.features(w) for w in waves]
        return self.emissions_from_features(feats, batch_size, chunk_seconds, context_seconds)

    @torch.inference_mode()
    def emissions_from_features(self, feats: list[torch.Tensor], batch_size: int = 16,
                                chunk_seconds: float = 30.0, context_seconds: float = 2.0) -> list[torch.Tensor]:
        stride = self.model.time_stride
        frames_per_second = 1000 / self.feature_config.hop_ms
        chunk = max(stride, int(chunk_seconds * frames_per_second) // stride * stride)
        context = int(context_seconds * frames_per_second) // stride * stride
        pieces = [p for i, f in enumerate(feats) for p in _split(i, f.shape[0], chunk, context)]
        pieces.sort(key=lambda p: p.end - p.start, reverse=True)  # similar lengths share a batch
        outputs: list[list[tuple[int, torch.Tensor]]] = [[] for _ in feats]
        for b in range(0, len(pieces), batch_size):
            group = pieces[b:b + batch_size]
            lengths = torch.tensor([p.end - p.start for p in group])
            batch = torch.zeros(len(group), int(lengths.max()), feats[0].shape[1])
            for j, p in enumerate(group):
                batch[j, : lengths[j]] = feats[p.utt][p.start:p.end]
            with self._autocast():
                logits, out_lengths = self.model(batch.to(self.device), lengths.to(self.device))
            log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
            for j, p in enumerate(group):
                lo = (p.keep_from - p.start) // stride
                hi = min(int(out_lengths[j]), lo + _ceil_div(p.keep_to - p.keep_from, stride))
                outputs[p.utt].append((p.keep_from, log_probs[j, lo:hi]))
        return [torch.cat([t for _, t in sorted(parts, key=lambda x: x[0])]) for parts in outputs]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _split(utt: int, n_frames: int, chunk: int, context: int) -> list[_Piece]:
    if n_frames <= chunk + 2 * context:
        return [_Piece(utt, 0, 0, n_frames, n_frames)]
    pieces = []
    for keep_from in range(0, n_frames, chunk):
        keep_to = min(n_frames, keep_from + chunk)
        pieces.append(_Piece(utt, max(0, keep_from - context), keep_from, keep_to,
                             min(n_frames, keep_to + context)))
    return pieces
