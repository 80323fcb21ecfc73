"""Edit distance, WER and CER, computed the way jiwer (and sclite) do: errors summed over the
corpus, divided by the number of reference units."""
from __future__ import annotations

from dataclasses import dataclass, field


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
