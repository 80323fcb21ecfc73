"""Deliberately wrong transcripts, for fitting and measuring the filter: a transcript swapped with
another utterance's, or words dropped, inserted or substituted (words from the corpus's own
vocabulary, so the result stays inside the alphabet)."""
from __future__ import annotations

import random

KINDS = ("swap", "drop", "insert", "substitute")


def split_words(text: str, language: str) -> list[str]:
    return list(text.replace(" ", "")) if language == "zh" else text.split()


def join_words(words: list[str], language: str) -> str:
    return ("" if language == "zh" else " ").join(words)


def corrupt_text(text: str, kind: str, rng: random.Random, vocabulary: list[str], others: list[str],
                 language: str = "en", edits: int = 1) -> str:
    """One wrong version of `text`, different from it. `edits` words are dropped, inserted or
    substituted (at least one word always remains); "swap" takes a different text from `others`."""
    if kind not in KINDS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {', '.join(KINDS)}")
    if kind == "swap":
        choices = [t for t in others if t != text]
        if not choices:
            raise ValueError("no other transcript to swap with")
        return rng.choice(choices)
    words = split_words(text, language)
    for _ in range(100):  # a random edit can leave the text unchanged (same word substituted)
        out = list(words)
        for _ in range(edits):
            if kind == "drop" and len(out) > 1:
                del out[rng.randrange(len(out))]
            elif kind == "insert" or kind == "drop":  # a one-word text cannot lose a word: insert
                out.insert(rng.randrange(len(out) + 1), rng.choice(vocabulary))
            else:
                out[rng.randrange(len(out))] = rng.choice(vocabulary)
        result = join_words(out, language)
        if result != text:
            return result
    raise ValueError(f"could not corrupt {text!r} with {kind!r} (vocabulary too small)")


def edits_for(text: str, language: str, edit_share: float) -> int:
    """Words to change: `edit_share` of the transcript's words, at least one."""
    return max(1, round(edit_share * len(split_words(text, language))))


def corrupt_rows(rows: list[dict], fraction: float, rng: random.Random, language: str = "en",
                 kinds: tuple[str, ...] = KINDS, edit_share: float = 0.2) -> list[dict]:
    """Copies of the manifest rows with round(fraction * n) transcripts corrupted, kinds in turn.
    A corrupted row keeps its original in `original_text` and names the kind in `corruption`."""
    texts = [r["text"] for r in rows]
    vocabulary = sorted({w for t in texts for w in split_words(t, language)})
    chosen = rng.sample(range(len(rows)), round(fraction * len(rows)))
    out = [dict(r) for r in rows]
    for n, i in enumerate(chosen):  # sample order is random, so kinds fall on random rows
        kind = kinds[n % len(kinds)]
        text = rows[i]["text"]
        out[i]["text"] = corrupt_text(text, kind, rng, vocabulary, texts, language,
                                      edits_for(text, language, edit_share))
        out[i]["original_text"], out[i]["corruption"] = text, kind
    return out
