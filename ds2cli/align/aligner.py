"""Aligning a manifest: audio is read and run through the network in batches, then each transcript
is force-aligned to its emission. Utterances that cannot be aligned (unreadable audio, characters
outside the alphabet, a transcript too long for its frames) come back as failed with a reason;
nothing else is lost."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from ds2cli.align.forced import (UNREADABLE, AlignmentError, Boundaries, TokenSpan, WordSpan, alignment_features,
                                 encode_transcript, frame_energy_db, spans_to_json, viterbi, word_spans)
from ds2cli.errors import AudioError, DS2Error
from ds2cli.lock import locks_folder
from ds2cli.manifest import read_row_audio
from ds2cli.progress import progress
from ds2cli.text import normalize

READ_GROUP = 8  # batches of audio held in memory at once


@dataclass
class UtteranceAlignment:
    """The alignment of one manifest row (or the reason it has none)."""

    id: str
    text: str  # the normalised transcript that was aligned
    duration: float  # seconds of audio actually read
    reason: str | None = None  # why it could not be aligned (None: aligned)
    detail: str = ""
    features: dict[str, float] = field(default_factory=dict)
    words: list[WordSpan] = field(default_factory=list)
    tokens: list[TokenSpan] = field(default_factory=list)  # in output frames
    frame_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_json(self, row: dict | None = None, with_tokens: bool = True) -> dict:
        out = {"id": self.id, "text": self.text, "duration": round(self.duration, 4)}
        if row is not None:
            out["audio_filepath"] = row["audio_filepath"]
            if row.get("offset"):
                out["offset"] = row["offset"]
        if self.ok:
            out["features"] = {k: round(v, 5) for k, v in self.features.items()}
            out["words"] = spans_to_json(self.words)
            if with_tokens:  # character (unit) times: the frames it occupies on the path, in seconds
                fs = self.frame_seconds
                out["tokens"] = [{"token": t.token, "start": round(t.start * fs, 3), "end": round(t.end * fs, 3),
                                  "logp": round(t.logp, 4)} for t in self.tokens]
        else:
            out["reason"], out["detail"] = self.reason, self.detail
        return out


@dataclass
class Emission:
    """Network output for one row: log_probs (T, V), or the audio error that prevented it."""

    row: dict
    log_probs: torch.Tensor | None
    duration: float
    error: str = ""
    energy_db: np.ndarray | None = None  # (T,) power of the audio under each output frame


def emissions(rows: list[dict], recognizer, batch_size: int = 16, quiet: bool = True) -> Iterator[Emission]:
    """Yield one Emission per row, in order; audio is read and batched `READ_GROUP` batches at a time."""
    sample_rate = recognizer.feature_config.sample_rate
    group = batch_size * READ_GROUP
    hop = round(recognizer.frame_seconds * sample_rate)  # samples per output frame
    bar = progress(total=len(rows), desc="align", quiet=quiet, unit="utt")
    try:
        for lo in range(0, len(rows), group):
            chunk = rows[lo:lo + group]
            waves, errors = [], {}
            for i, row in enumerate(chunk):
                try:
                    waves.append(read_row_audio(row, sample_rate))
                except AudioError as err:
                    errors[i] = str(err)
            outputs = iter(recognizer.emissions(waves, batch_size) if waves else [])
            waves_iter = iter(waves)
            for i, row in enumerate(chunk):
                if i in errors:
                    yield Emission(row, None, 0.0, errors[i])
                else:
                    wave, log_probs = next(waves_iter), next(outputs)
                    energy = frame_energy_db(wave, hop, log_probs.shape[0])
                    yield Emission(row, log_probs, len(wave) / sample_rate, energy_db=energy)
                bar.update(1)
    finally:
        bar.close()


def align_text(emission: Emission, text: str, recognizer, boundaries: Boundaries = Boundaries()
               ) -> UtteranceAlignment:
    """Force-align `text` (normalised here) to one emission; failures carry their reason."""
    tokenizer = recognizer.tokenizer
    utt_id = str(emission.row["id"])
    text = normalize(text, tokenizer.language)
    if emission.log_probs is None:
        return UtteranceAlignment(utt_id, text, 0.0, UNREADABLE, emission.error)
    try:
        targets = encode_transcript(text, tokenizer)
        path = viterbi(emission.log_probs, targets, tokenizer.vocab)
    except AlignmentError as err:
        return UtteranceAlignment(utt_id, text, emission.duration, err.reason, err.detail)
    words = word_spans(path.tokens, tokenizer, recognizer.frame_seconds, emission.duration,
                       emission.energy_db if boundaries.snap else None, boundaries.start_shift,
                       boundaries.end_shift)
    feats = alignment_features(emission.log_probs, text, path, emission.duration, tokenizer)
    return UtteranceAlignment(utt_id, text, emission.duration, features=feats, words=words, tokens=path.tokens,
                              frame_seconds=recognizer.frame_seconds)


@dataclass
class AlignRun:
    """All alignments of a manifest, in manifest order, with timing for the throughput figure."""

    rows: list[dict]
    alignments: list[UtteranceAlignment]
    seconds: float  # wall time for reading, network and alignment

    @property
    def audio_seconds(self) -> float:
        return sum(a.duration for a in self.alignments)

    def failures(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for a in self.alignments:
            if not a.ok:
                counts[a.reason] = counts.get(a.reason, 0) + 1
        return counts


def align_manifest(rows: list[dict], recognizer, batch_size: int = 16, quiet: bool = True,
                   boundaries: Boundaries = Boundaries()) -> AlignRun:
    """Align every row's transcript to its audio."""
    start = time.perf_counter()
    out = [align_text(e, e.row["text"], recognizer, boundaries) for e in emissions(rows, recognizer, batch_size, quiet)]
    return AlignRun(rows, out, time.perf_counter() - start)


def filter_run(run: AlignRun, flt) -> tuple[list[dict], list[dict]]:
    """Split the manifest into kept rows and rejected rows; each rejected row gets `reject_reason`
    (an alignment failure, or the filter's reason) and the features it was judged on."""
    kept, rejected = [], []
    for row, a in zip(run.rows, run.alignments):
        reason = (f"{a.reason}: {a.detail}" if a.detail else a.reason) if not a.ok else flt.reject_reason(a.features)
        if reason is None:
            kept.append(row)
        else:
            extra = {"features": {k: round(v, 5) for k, v in a.features.items()}} if a.ok else {}
            rejected.append({**row, "reject_reason": reason, **extra})
    return kept, rejected


@dataclass
class FitResult:
    filter: object  # LogisticFilter
    utterances: int  # rows used (each contributes its transcript and one corrupted copy)
    failed: dict[str, int]  # alignment failures of the original transcripts, by reason
    seconds: float


def fit_filter(rows: list[dict], recognizer, seed: int = 0, batch_size: int = 16, quiet: bool = True,
               edit_share: float = 0.2, features: list[str] | None = None) -> FitResult:
    """Fit a LogisticFilter on `rows` (transcripts taken as correct) against one corrupted copy of
    each (swap, drop, insert, substitute in turn). Each audio goes through the network once; both
    transcripts are aligned to the same emission. Rows that cannot be aligned are left out.

    Use rows the model was not trained on: on its own training data the model is over-confident,
    correct transcripts look cleaner than anywhere else, and the filter then rejects many correct
    utterances elsewhere (ARCTIC: 55% kept instead of 94%; benchmarks/results/align_cleaning.json)."""
    import random

    from ds2cli.align.corrupt import corrupt_rows
    from ds2cli.align.filter import LogisticFilter
    from ds2cli.align.forced import FEATURE_NAMES

    start = time.perf_counter()
    language = recognizer.tokenizer.language
    rows = [{**r, "text": normalize(r["text"], language)} for r in rows]
    try:
        wrong_rows = corrupt_rows(rows, 1.0, random.Random(seed), language, edit_share=edit_share)
    except ValueError as err:  # e.g. every transcript the same: nothing to swap with
        raise DS2Error(f"cannot corrupt these transcripts to fit a filter: {err}") from None
    feats, labels, failed = [], [], {}
    for e, wrong in zip(emissions(rows, recognizer, batch_size, quiet), wrong_rows):
        good = align_text(e, e.row["text"], recognizer)
        if not good.ok:
            failed[good.reason] = failed.get(good.reason, 0) + 1
            continue
        bad = align_text(e, wrong["text"], recognizer)
        feats.append(good.features)
        labels.append(False)
        if bad.ok:  # a corrupted transcript too long for its audio is rejected before the filter
            feats.append(bad.features)
            labels.append(True)
    if not any(labels) or all(labels):
        raise DS2Error("fitting the filter needs alignable utterances "
                       f"({len(rows)} given, failures: {failed or 'none'})")
    flt = LogisticFilter.fit(feats, labels, features or FEATURE_NAMES)
    clean = [f["greedy_cer"] for f, wrong in zip(feats, labels) if not wrong]
    flt.info["fit_clean_greedy_cer"] = round(sum(clean) / len(clean), 4)
    return FitResult(flt, len(rows) - sum(failed.values()), failed, time.perf_counter() - start)


def write_ctm(path, run: AlignRun) -> int:
    """Word timings as CTM (`utt 1 start duration word confidence`, seconds from the start of
    each utterance's audio); returns the number of words."""
    from ds2cli.fileio import write_text

    lines = [f"{a.id} 1 {w.start:.3f} {w.end - w.start:.3f} {w.word} {w.confidence:.3f}\n"
             for a in run.alignments if a.ok for w in a.words]
    write_text(path, "".join(lines))
    return len(lines)


@locks_folder("align")
def align_to_dir(rows: list[dict], recognizer, out_dir, flt=None, ctm: bool = True, tokens: bool = True,
                 batch_size: int = 16, quiet: bool = True, boundaries: Boundaries = Boundaries(),
                 manifest: str = "") -> dict:
    """Align manifest rows into `out_dir`: alignments.jsonl (+ words.ctm), and with a filter
    kept.jsonl and rejected.jsonl; summary.json holds the returned summary. One run at a time
    per `out_dir` (ds2cli.lock)."""
    from pathlib import Path

    from ds2cli.fileio import write_json, write_jsonl
    from ds2cli.manifest import write_manifest

    out_dir = Path(out_dir)
    run = align_manifest(rows, recognizer, batch_size, quiet, boundaries)
    write_jsonl(out_dir / "alignments.jsonl", (a.to_json(r, tokens) for r, a in zip(rows, run.alignments)))
    aligned = sum(a.ok for a in run.alignments)
    summary = {"manifest": str(manifest), "checkpoint": recognizer.checkpoint_path,
               "utterances": len(rows), "aligned": aligned, "failed": run.failures(),
               "audio_seconds": round(run.audio_seconds, 2), "wall_seconds": round(run.seconds, 2),
               "realtime_factor": round(run.audio_seconds / max(run.seconds, 1e-9), 2),
               "frame_seconds": recognizer.frame_seconds, "boundaries": "pauses" if boundaries.snap else "spikes",
               "alignments": str(out_dir / "alignments.jsonl")}
    if ctm:
        write_ctm(out_dir / "words.ctm", run)
        summary["ctm"] = str(out_dir / "words.ctm")
    if flt is not None:
        kept, rejected = filter_run(run, flt)
        write_manifest(out_dir / "kept.jsonl", kept)
        write_manifest(out_dir / "rejected.jsonl", rejected)
        reasons: dict[str, int] = {}
        for r in rejected:
            key = r["reject_reason"].split(":")[0]  # "threshold", "classifier" or a failure reason
            reasons[key] = reasons.get(key, 0) + 1
        summary.update({"filter": flt.describe(), "kept": len(kept), "rejected": len(rejected),
                        "rejected_by_reason": reasons, "kept_manifest": str(out_dir / "kept.jsonl"),
                        "rejected_manifest": str(out_dir / "rejected.jsonl")})
    write_json(out_dir / "summary.json", summary)
    return summary
