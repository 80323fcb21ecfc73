"""Edit distance, WER and CER, computed the way jiwer (and sclite) do: errors summed over the
corpus, divided by the number of reference units; and `ds2cli score` as a library: read references
and hypotheses (decode/manifest JSON lines, or `id text` lines), pair them by id, and score them
with per-utterance rows."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ds2cli.errors import DS2Error
from ds2cli.fileio import read_text_lines
from ds2cli.text import normalize

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@dataclass
class ErrorCounts:
    """Alignment counts of hypothesis against reference units (words or characters)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def ref_len(self) -> int:
        return self.substitutions + self.deletions + self.hits

    @property
    def rate(self) -> float:
        """Error rate; an empty reference scores 0 for an empty hypothesis, else 1 per insertion
        (jiwer's convention would divide by zero)."""
        return self.errors / self.ref_len if self.ref_len else float(self.insertions > 0)

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(self.substitutions + other.substitutions, self.deletions + other.deletions,
                           self.insertions + other.insertions, self.hits + other.hits)

    def as_dict(self) -> dict:
        return {"rate": self.rate, "errors": self.errors, "ref_len": self.ref_len,
                "substitutions": self.substitutions, "deletions": self.deletions,
                "insertions": self.insertions, "hits": self.hits}


def edit_counts(ref: list, hyp: list) -> ErrorCounts:
    """Levenshtein alignment counts of two unit sequences. rapidfuzz's C++ editops picks among
    equally short alignments exactly as jiwer does (jiwer uses it), so S/D/I split the same way."""
    from rapidfuzz.distance import Levenshtein

    counts = ErrorCounts()
    for op in Levenshtein.editops(ref, hyp):
        if op.tag == "replace":
            counts.substitutions += 1
        elif op.tag == "delete":
            counts.deletions += 1
        else:
            counts.insertions += 1
    counts.hits = len(ref) - counts.substitutions - counts.deletions
    return counts


def word_units(text: str) -> list[str]:
    return text.split()


def char_units(text: str, keep_spaces: bool = True) -> list[str]:
    """Characters of the text, stripped; inner spaces count as characters (as in jiwer.cer)
    unless `keep_spaces` is False (Mandarin)."""
    text = text.strip()
    return list(text) if keep_spaces else [c for c in text if not c.isspace()]


def wer(refs: list[str], hyps: list[str]) -> float:
    return _total(refs, hyps, word_units).rate


def cer(refs: list[str], hyps: list[str]) -> float:
    return _total(refs, hyps, char_units).rate


def _total(refs, hyps, units) -> ErrorCounts:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    total = ErrorCounts()
    for r, h in zip(refs, hyps):
        total = total + edit_counts(units(r), units(h))
    return total


@dataclass
class Score:
    """Corpus totals plus per-utterance counts, for `ds2cli score` and validation."""

    wer: ErrorCounts = field(default_factory=ErrorCounts)
    cer: ErrorCounts = field(default_factory=ErrorCounts)
    utterances: list[dict] = field(default_factory=list)


def score_pairs(pairs: list[tuple[str, str, str]], language: str = "en") -> Score:
    """Score (id, reference, hypothesis) triples. Mandarin counts characters without spaces
    for both rates (its WER is its CER)."""
    result = Score()
    zh = language == "zh"
    for utt_id, ref, hyp in pairs:
        c = edit_counts(char_units(ref, not zh), char_units(hyp, not zh))
        w = c if zh else edit_counts(word_units(ref), word_units(hyp))
        result.wer = result.wer + w
        result.cer = result.cer + c
        result.utterances.append({"id": utt_id, "ref": ref, "hyp": hyp,
                                  "wer": w.rate, "cer": c.rate, "word_errors": w.errors,
                                  "ref_words": w.ref_len, "char_errors": c.errors, "ref_chars": c.ref_len})
    return result



def read_texts(path) -> dict[str, str]:
    """id -> text from JSON lines (keys `id` and `text`; `_meta` lines ignored) or `id text` lines."""
    path = Path(path)
    lines = read_text_lines(path)
    texts: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DS2Error(f"{path}:{n}: not valid JSON ({err.msg})") from None
            if "_meta" in row and "id" not in row:
                continue
            if "text" not in row:
                raise DS2Error(f"{path}:{n}: no 'text' key")
            utt = row.get("id") or Path(row.get("audio_filepath", f"line{n}")).stem
            text = row["text"]
        else:
            utt, _, text = line.strip().partition(" ")
        if utt in texts:
            raise DS2Error(f"{path}:{n}: duplicate id {utt!r}")
        texts[utt] = text
    return texts


def detect_language(texts) -> str:
    return "zh" if any(_CJK.search(t) for t in texts) else "en"


@dataclass
class ScoreReport:
    language: str
    score: Score
    missing_hypotheses: list[str]  # reference ids with no hypothesis (scored as empty)
    extra_hypotheses: list[str]  # hypothesis ids with no reference (ignored)

    def utterances_by_error(self) -> list[dict]:
        key = "cer" if self.language == "zh" else "wer"
        return sorted(self.score.utterances, key=lambda u: (u[key], u["id"]))

    def as_dict(self, per_utterance: bool = False) -> dict:
        rows = self.utterances_by_error()
        d = {"language": self.language, "utterances": len(rows), "wer": self.score.wer.as_dict(),
             "cer": self.score.cer.as_dict(), "missing_hypotheses": self.missing_hypotheses,
             "extra_hypotheses": self.extra_hypotheses}
        if rows:
            d["best"], d["median"], d["worst"] = rows[0], rows[len(rows) // 2], rows[-1]
        if per_utterance:
            d["per_utterance"] = sorted(self.score.utterances, key=lambda u: u["id"])
        return d


def score_files(ref_path, hyp_path, language: str | None = None, normalise: bool = True) -> ScoreReport:
    """References first, as Kaldi's compute-wer and jiwer take them."""
    refs, hyps = read_texts(ref_path), read_texts(hyp_path)
    if not refs:
        raise DS2Error(f"{ref_path}: no references")
    return score_texts(refs, hyps, language, normalise)


def score_texts(refs: dict[str, str], hyps: dict[str, str], language: str | None = None,
                normalise: bool = True) -> ScoreReport:
    """The one corpus scorer (`ds2cli score`, and the WER `ds2cli decode` prints): every reference
    is scored, one without a hypothesis as an empty one; hypotheses without a reference are ignored."""
    language = language or detect_language(refs.values())
    norm = (lambda t: normalize(t, language)) if normalise else (lambda t: t)
    pairs = [(utt, norm(ref), norm(hyps.get(utt, ""))) for utt, ref in refs.items()]
    return ScoreReport(language, score_pairs(pairs, language),
                       sorted(set(refs) - set(hyps)), sorted(set(hyps) - set(refs)))
