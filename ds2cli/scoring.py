"""`ds2cli score` as a library: read hypotheses and references (decode/manifest JSON lines, or
`id text` lines), pair them by id, and compute WER/CER with per-utterance rows."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ds2cli.errors import DS2Error
from ds2cli.metrics import Score, score_pairs
from ds2cli.text import normalize

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def read_texts(path) -> dict[str, str]:
    """id -> text from JSON lines (keys `id` and `text`; `_meta` lines ignored) or `id text` lines."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DS2Error(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise DS2Error(f"{path}: not UTF-8 text") from None
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


def score_files(hyp_path, ref_path, language: str | None = None, normalise: bool = True) -> ScoreReport:
    hyps, refs = read_texts(hyp_path), read_texts(ref_path)
    if not refs:
        raise DS2Error(f"{ref_path}: no references")
    language = language or detect_language(refs.values())
    norm = (lambda t: normalize(t, language)) if normalise else (lambda t: t)
    pairs = [(utt, norm(ref), norm(hyps.get(utt, ""))) for utt, ref in refs.items()]
    return ScoreReport(language, score_pairs(pairs, language),
                       sorted(set(refs) - set(hyps)), sorted(set(hyps) - set(refs)))
