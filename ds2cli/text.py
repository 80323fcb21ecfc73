"""Output units and text normalisation.

A `Tokenizer` maps text to label ids and back; id 0 is always the CTC blank. Two kinds:
- `CharTokenizer`: characters (English a-z, space, apostrophe; Mandarin characters).
- `BpeTokenizer`: a sentencepiece model trained on the training text; pieces that start a
  word carry the "▁" marker.
Both serialise to a plain dict (strings and lists only) so checkpoints load with
`torch.load(weights_only=True)`.
"""
from __future__ import annotations

import base64
import re
import unicodedata
from collections import Counter
from typing import Iterable

BLANK = "<blank>"
ENGLISH_CHARS = list(" 'abcdefghijklmnopqrstuvwxyz")
WORD_MARK = "\u2581"  # sentencepiece's word-start marker "▁"

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def normalize_english(text: str) -> str:
    """Lower-case, fold accents and curly quotes, turn hyphens into spaces, drop punctuation.

    Characters that remain outside a-z, space and apostrophe (digits, say) are kept, so the
    caller can report them as outside the alphabet instead of silently changing the words."""
    text = unicodedata.normalize("NFKD", text.translate(_QUOTES))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[-\u2013\u2014/_]", " ", text)
    text = re.sub(r"[.,;:!?\"()\[\]{}<>*&~^|]", "", text)
    text = re.sub(r"(^|\s)'+|'+(\s|$)", r"\1\2", text)  # quotes around words, not inside them
    return " ".join(text.split())


def normalize_mandarin(text: str) -> str:
    """NFKC (full-width to half-width), remove spaces and punctuation, lower-case Roman letters."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if not c.isspace() and unicodedata.category(c)[0] != "P")


def normalize(text: str, language: str) -> str:
    if language == "en":
        return normalize_english(text)
    if language == "zh":
        return normalize_mandarin(text)
    raise ValueError(f"unknown language {language!r} (expected 'en' or 'zh')")


def words(text: str, language: str) -> list[str]:
    """Scoring units for WER: words for English, characters for Mandarin (no spaces)."""
    return list(text.replace(" ", "")) if language == "zh" else text.split()


class CharTokenizer:
    """Characters as output units. vocab[0] is the blank."""

    kind = "char"

    def __init__(self, chars: Iterable[str], language: str = "en"):
        chars = list(chars)
        if len(set(chars)) != len(chars) or BLANK in chars:
            raise ValueError("alphabet characters must be unique and must not include the blank")
        self.language = language
        self.vocab = [BLANK] + chars
        self._index = {c: i for i, c in enumerate(self.vocab)}

    @classmethod
    def english(cls) -> "CharTokenizer":
        return cls(ENGLISH_CHARS, "en")

    @classmethod
    def from_texts(cls, texts: Iterable[str], language: str, min_count: int = 1) -> "CharTokenizer":
        """Build from training text: the fixed English set, or every Mandarin character seen."""
        if language == "en":
            return cls.english()
        counts = Counter(c for t in texts for c in t)
        return cls(sorted(c for c, n in counts.items() if n >= min_count), language)

    @property
    def word_separator(self) -> str | None:
        """The unit that ends a word, if words are separated (English), else None (Mandarin)."""
        return " " if " " in self._index else None

    def __len__(self) -> int:
        return len(self.vocab)

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` that are not in the alphabet, sorted."""
        return sorted({c for c in text if c not in self._index})

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the alphabet") from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[i] for i in ids if i != 0)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "language": self.language, "vocab": self.vocab[1:]}


class BpeTokenizer:
    """Sentencepiece sub-word units. vocab[0] is the blank; sentencepiece ids are shifted by one."""

    kind = "bpe"

    def __init__(self, model_proto: bytes, language: str = "en"):
        import sentencepiece as spm

        self.language = language
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.vocab = [BLANK] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, language: str = "en") -> "BpeTokenizer":
        import io

        import sentencepiece as spm

        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(list(texts)), model_writer=model, vocab_size=vocab_size,
            model_type="bpe", character_coverage=1.0 if language == "en" else 0.9995,
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, minloglevel=2,
        )
        return cls(model.getvalue(), language)

    @property
    def word_separator(self) -> str | None:
        return WORD_MARK  # a piece starting with this mark begins a new word

    def __len__(self) -> int:
        return len(self.vocab)

    def unknown(self, text: str) -> list[str]:
        pieces = self.sp.encode(text, out_type=str)
        return sorted({p for p in pieces if self.sp.piece_to_id(p) == self.sp.unk_id()})

    def encode(self, text: str) -> list[int]:
        return [i + 1 for i in self.sp.encode(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([i - 1 for i in ids if i != 0])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "language": self.language,
                "model": base64.b64encode(self.model_proto).decode("ascii")}


Tokenizer = CharTokenizer | BpeTokenizer


def tokenizer_from_dict(d: dict) -> Tokenizer:
    if d.get("kind") == "char":
        return CharTokenizer(d["vocab"], d.get("language", "en"))
    if d.get("kind") == "bpe":
        return BpeTokenizer(base64.b64decode(d["model"]), d.get("language", "en"))
    raise ValueError(f"unknown tokenizer kind {d.get('kind')!r}")


def load_tokenizer(path) -> Tokenizer:
    import json

    with open(path, encoding="utf-8") as f:
        return tokenizer_from_dict(json.load(f))
