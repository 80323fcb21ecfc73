"""CTC forced alignment of one transcript to one emission: the Viterbi path (torchaudio's
`forced_align`), token and word spans with times, and the per-utterance features that tell a
right transcript from a wrong one (DS2 section 5, data cleaning)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ds2cli.ctc import greedy_ids, min_ctc_frames
from ds2cli.metrics import char_units, edit_counts
from ds2cli.text import WORD_MARK

# Word boundaries from CTC spikes. A character's spike sits inside its sound, so the first
# spike of a word comes after the word's onset and the last spike before its offset. These
# shifts (seconds, added to the raw frame times) were fitted on spliced FSDD digit strings from
# the train takes, where the true times are known (benchmarks/align_timing.py,
# results/align_timing.json: raw spikes start about 50 ms late and end 110 ms early). They depend
# on the model (a peakier model needs larger shifts); `Boundaries` takes others.
START_SHIFT = -0.05
END_SHIFT = 0.11
# Pause snapping (see snap_to_pauses): a pause is at least this many silent output frames, the
# utterance must span this many dB between quiet and loud, and an edge moves at most this far.
PAUSE_FRAMES = 2
MIN_RANGE_DB = 20.0
MAX_SNAP = 0.5

# Rejection reasons for transcripts that cannot be aligned at all (stable strings: counted and
# matched in reports and tests).
TOO_LONG = "transcript too long for audio"
OUT_OF_ALPHABET = "characters outside the alphabet"
EMPTY = "empty transcript"
UNREADABLE = "unreadable audio"


@dataclass(frozen=True)
class Boundaries:
    """How word edges are placed: spike times plus constant shifts (seconds), then, with `snap`,
    edges next to a silent pause moved to the pause's edges."""

    start_shift: float = START_SHIFT
    end_shift: float = END_SHIFT
    snap: bool = True


class AlignmentError(ValueError):
    """A transcript that cannot be aligned; `reason` is one of the constants above."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class TokenSpan:
    """One output unit on the Viterbi path: frames [start, end) and its best frame's log posterior."""

    token: str
    start: int
    end: int
    logp: float


@dataclass
class WordSpan:
    """One word with times in seconds from the start of the utterance, and a confidence (the
    mean posterior of its tokens' best frames)."""

    word: str
    start: float
    end: float
    confidence: float


@dataclass
class Viterbi:
    """The forced path. path (T,) label per frame (0 = blank); frame_logp (T,) its log posterior."""

    path: torch.Tensor
    frame_logp: torch.Tensor
    tokens: list[TokenSpan]

    @property
    def logp(self) -> float:
        return float(self.frame_logp.sum())


def encode_transcript(text: str, tokenizer) -> list[int]:
    """Label ids of `text`; AlignmentError (empty / outside the alphabet) instead of a crash."""
    if not text.strip():
        raise AlignmentError(EMPTY)
    unknown = tokenizer.unknown(text)
    if unknown:
        raise AlignmentError(OUT_OF_ALPHABET, " ".join(repr(c) for c in unknown))
    return tokenizer.encode(text)


def viterbi(log_probs: torch.Tensor, targets: list[int], vocab: list[str]) -> Viterbi:
    """Best CTC path of `targets` through log_probs (T, V). AlignmentError if it cannot fit."""
    import torchaudio.functional as AF

    frames = log_probs.shape[0]
    if not targets:
        raise AlignmentError(EMPTY)
    needed = min_ctc_frames(targets)
    if needed > frames:
        raise AlignmentError(TOO_LONG, f"needs at least {needed} frames, audio has {frames}")
    path, scores = AF.forced_align(log_probs[None].float(), torch.tensor([targets], dtype=torch.int32),
                                   blank=0)
    path, scores = path[0], scores[0]
    return Viterbi(path, scores, token_spans(path, scores, vocab))


def token_spans(path: torch.Tensor, frame_logp: torch.Tensor, vocab: list[str]) -> list[TokenSpan]:
    """Merge runs of one label on the path (blanks dropped). path, frame_logp shape = (T,)"""
    labels, counts = torch.unique_consecutive(path, return_counts=True)
    ends = counts.cumsum(0).tolist()
    spans, start = [], 0
    for label, end in zip(labels.tolist(), ends):
        if label != 0:
            spans.append(TokenSpan(vocab[label], start, end, float(frame_logp[start:end].max())))
        start = end
    return spans


def group_words(tokens: list[TokenSpan], tokenizer) -> list[tuple[str, list[TokenSpan]]]:
    """(word, its token spans): split on the space token (English characters), start a word at
    each piece marked "▁" (sentencepiece), one word per character otherwise (Mandarin)."""
    groups: list[list[TokenSpan]] = []
    separator = tokenizer.word_separator
    for tok in tokens:
        if separator == " " and tok.token == " ":
            groups.append([])  # the space closes the word
        elif (separator == WORD_MARK and tok.token.startswith(WORD_MARK)) or separator is None or not groups:
            groups.append([tok])
        else:
            groups[-1].append(tok)
    words = []
    for group in groups:
        text = "".join(t.token for t in group).replace(WORD_MARK, "")
        content = [t for t in group if t.token.replace(WORD_MARK, "")]
        if text:
            words.append((text, content))
    return words


def frame_energy_db(wave: np.ndarray, samples_per_frame: int, n_frames: int) -> np.ndarray:
    """Mean power in dB of the samples under each output frame. wave (n,) -> (n_frames,)"""
    need = n_frames * samples_per_frame
    w = np.pad(np.asarray(wave, np.float64)[:need], (0, max(0, need - len(wave))))
    return 10 * np.log10(np.square(w.reshape(n_frames, samples_per_frame)).mean(1) + 1e-12)


def _pause(silent: np.ndarray, lo: int, hi: int) -> tuple[int, int] | None:
    """The longest run of silent frames in [lo, hi) of at least PAUSE_FRAMES, as (start, end)."""
    best, t = None, lo
    while t < hi:
        if silent[t]:
            u = t
            while u < hi and silent[u]:
                u += 1
            if u - t >= PAUSE_FRAMES and (best is None or u - t > best[1] - best[0]):
                best = (t, u)
            t = u
        else:
            t += 1
    return best


def snap_to_pauses(frames: list[tuple[int, int]], energy_db: np.ndarray, starts: list[float],
                   ends: list[float], frame_seconds: float) -> None:
    """Move word edges (seconds, in place) to the edges of a silent pause between two words'
    spikes, where there is one: the longest silent run between a word's last spike and the next
    word's first (or the audio's edge) ends the word and starts the next. Silent: below the
    utterance's quiet level + 10% of its dynamic range; nothing moves when the range is under
    MIN_RANGE_DB (no clear silence) or the pause is more than MAX_SNAP seconds from the spike."""
    quiet, loud = np.percentile(energy_db, [5, 95])
    if loud - quiet < MIN_RANGE_DB:
        return
    silent = energy_db < quiet + 0.1 * (loud - quiet)
    n = len(energy_db)
    limit = MAX_SNAP / frame_seconds
    if frames:
        run = _pause(silent, 0, frames[0][0])
        if run and frames[0][0] - run[1] <= limit:
            starts[0] = run[1] * frame_seconds
    for i, (_, end) in enumerate(frames):
        nxt = frames[i + 1][0] if i + 1 < len(frames) else n
        run = _pause(silent, end, nxt)
        if run and run[0] - end <= limit:
            ends[i] = run[0] * frame_seconds
            if i + 1 < len(frames) and nxt - run[1] <= limit:
                starts[i + 1] = run[1] * frame_seconds


def word_spans(tokens: list[TokenSpan], tokenizer, frame_seconds: float, duration: float | None = None,
               energy_db: np.ndarray | None = None, start_shift: float = START_SHIFT,
               end_shift: float = END_SHIFT) -> list[WordSpan]:
    """Words with times. A word runs from its first token's first frame to its last token's end
    (frame i covers [i, i+1) * frame_seconds), shifted by the calibrated constants; with
    `energy_db` (T,), edges that border a silent pause are then moved to the pause's edges."""
    words = group_words(tokens, tokenizer)
    frames = [(group[0].start, group[-1].end) for _, group in words]
    starts = [max(0.0, s * frame_seconds + start_shift) for s, _ in frames]
    ends = [e * frame_seconds + end_shift for _, e in frames]
    for i in range(len(ends) - 1):  # shifted edges that cross meet halfway between the spikes
        if ends[i] > starts[i + 1]:
            ends[i] = starts[i + 1] = (frames[i][1] + frames[i + 1][0]) / 2 * frame_seconds
    if energy_db is not None:
        snap_to_pauses(frames, energy_db, starts, ends, frame_seconds)
    limit = duration if duration is not None else math.inf
    out = []
    for (text, group), start, end in zip(words, starts, ends):
        conf = sum(math.exp(t.logp) for t in group) / len(group)
        end = min(limit, max(end, start))
        out.append(WordSpan(text, round(start, 3), round(end, 3), round(conf, 4)))
    return out


def alignment_features(log_probs: torch.Tensor, text: str, alignment: Viterbi, duration: float,
                       tokenizer) -> dict[str, float]:
    """Features of one alignment that separate right from wrong transcripts. log_probs (T, V)

    mean_logp / min_logp: log posterior along the forced path, mean per frame and worst frame;
    mean_token_logp / min_token_logp: the same over tokens (each token's best frame);
    score_gap: (best unconstrained path - forced path) log probability per frame, >= 0;
    greedy_cer: CER of the greedy transcript against this one; chars_per_second (spaces
    excluded); blank_share: frames on blank; frames_per_token; duration (seconds)."""
    frames = log_probs.shape[0]
    best = float(log_probs.max(-1).values.sum())
    token_logp = [t.logp for t in alignment.tokens] or [0.0]
    hyp = tokenizer.decode(greedy_ids(log_probs))
    keep_spaces = tokenizer.language != "zh"
    cer = edit_counts(char_units(text, keep_spaces), char_units(hyp, keep_spaces)).rate
    return {
        "mean_logp": alignment.logp / frames,
        "min_logp": float(alignment.frame_logp.min()),
        "mean_token_logp": sum(token_logp) / len(token_logp),
        "min_token_logp": min(token_logp),
        "score_gap": max(0.0, best - alignment.logp) / frames,
        "greedy_cer": cer,
        "chars_per_second": len(text.replace(" ", "")) / max(duration, 1e-3),
        "blank_share": float((alignment.path == 0).float().mean()),
        "frames_per_token": frames / max(1, len(alignment.tokens)),
        "duration": duration,
    }


FEATURE_NAMES = ["mean_logp", "min_logp", "mean_token_logp", "min_token_logp", "score_gap", "greedy_cer",
                 "chars_per_second", "blank_share", "frames_per_token", "duration"]


def spans_to_json(spans) -> list[dict]:
    return [asdict(s) for s in spans]
