"""KenLM n-gram models for decoding: loading with clear errors, the vocabulary, and the
word/character level.

A model file is a KenLM binary (`lm.bin`) or an ARPA file. The decoder needs the LM's vocabulary
(to tell, while a word is still being spelled, whether it can still become a known word), so
`ds2cli lm build` writes it beside the model as `<stem>.vocab`; an ARPA file carries its own.
KenLM scores are log10; everything here returns natural logs."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ds2cli.errors import DS2Error

LN10 = math.log(10.0)  # log10 -> natural log
SPECIAL = ("<s>", "</s>", "<unk>")
CHAR_SPACE = "|"  # how a character-level LM spells the space between English words


class KenLM:
    """A loaded KenLM model whose context states are small integers, so the search can keep
    them in numpy arrays and cache scores by (state, word)."""

    def __init__(self, path, vocab: list[str] | None, level: str | None = None):
        import kenlm

        self.path = Path(path)
        self.model = _load_model(self.path)
        self.order: int = self.model.order
        self.vocab = vocab  # words (no <s>, </s>, <unk>), or None if unknown
        self.level = level  # "word"/"char" as recorded by `ds2cli lm build`, else None
        self._kenlm = kenlm
        self.reset()

    def reset(self) -> None:
        """Forget all context states (their ids start again from the sentence start)."""
        self._states: list = []
        self._state_ids: dict = {}
        start = self._kenlm.State()
        self.model.BeginSentenceWrite(start)
        self.start_state = self._id(start)

    def _id(self, state) -> int:
        sid = self._state_ids.get(state)
        if sid is None:
            sid = self._state_ids[state] = len(self._states)
            self._states.append(state)
        return sid

    def score(self, state: int, word: str) -> tuple[float, int]:
        """Natural-log probability of `word` after context `state`, and the next state.
        A word outside the LM's vocabulary gets KenLM's <unk> probability."""
        out = self._kenlm.State()
        lp = self.model.BaseScore(self._states[state], word, out)
        return lp * LN10, self._id(out)

    def end_score(self, state: int) -> float:
        """Natural-log probability of the end of sentence after `state`."""
        return self.model.BaseScore(self._states[state], "</s>", self._kenlm.State()) * LN10

    def __contains__(self, word: str) -> bool:
        return word in self.model

    @property
    def n_states(self) -> int:
        return len(self._states)


def load_lm(path, level: str | None = None) -> KenLM:
    """Load a KenLM binary or ARPA file with its vocabulary; DS2Error naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DS2Error(f"{path}: no such language model file")
    meta = read_meta(path)
    vocab = read_vocab(path)
    return KenLM(path, vocab, level or meta.get("level"))


def _load_model(path: Path):
    import kenlm

    config = kenlm.Config()
    config.show_progress = False
    config.arpa_complain = kenlm.ARPALoadComplain.NONE
    try:
        return kenlm.Model(str(path), config)
    except UnicodeDecodeError:  # kenlm reads a non-KenLM binary as ARPA text
        raise DS2Error(f"{path}: not a KenLM model (neither a KenLM binary nor ARPA text)") from None
    except Exception as err:  # kenlm raises OSError for bad or truncated files
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "threw" in detail:  # keep KenLM's reason, drop its C++ source location
            detail = detail.split("threw", 1)[1].split(".", 1)[-1].strip().rstrip(")") or detail
        raise DS2Error(f"{path}: not a readable KenLM model ({detail[:160]})") from None


def meta_path(path) -> Path:
    return Path(path).with_suffix(".json")


def vocab_path(path) -> Path:
    return Path(path).with_suffix(".vocab")


def read_meta(path) -> dict:
    """What `ds2cli lm build` recorded about a model (level, order, language, ...), or {}."""
    p = meta_path(path)
    if not p.is_file():
        return {}
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def read_vocab(path) -> list[str] | None:
    """The LM's words from `<stem>.vocab` (one per line), or the unigrams of an ARPA file."""
    path = Path(path)
    side = vocab_path(path)
    if side.is_file() and side != path:
        try:
            words = side.read_text(encoding="utf-8").split()
        except UnicodeDecodeError:
            raise DS2Error(f"{side}: vocabulary file is not UTF-8 text") from None
        return [w for w in words if w not in SPECIAL]
    if _is_arpa(path):
        return arpa_unigrams(path)
    return None


def _is_arpa(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.lstrip().startswith(b"\\data\\")


def arpa_unigrams(path) -> list[str]:
    """Words of an ARPA file's \\1-grams section (specials excluded)."""
    words, inside = [], False
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("\\"):
                    if inside:
                        break
                    inside = line == "\\1-grams:"
                    continue
                if inside and line:
                    parts = line.split("\t")
                    if len(parts) >= 2 and parts[1] not in SPECIAL:
                        words.append(parts[1])
    except UnicodeDecodeError:
        raise DS2Error(f"{path}: ARPA file is not UTF-8 text") from None
    return words


def detect_level(lm: KenLM, tokenizer) -> str:
    """Word or character LM: what `lm build` recorded, else what the vocabulary looks like
    (single characters: char), else the model's language (Mandarin: char)."""
    if lm.level in ("word", "char"):
        return lm.level
    if lm.vocab:
        single = sum(1 for w in lm.vocab if len(w) == 1)
        return "char" if single >= 0.9 * len(lm.vocab) else "word"
    return "char" if tokenizer.word_separator is None else "word"


def check_fit(lm: KenLM, tokenizer, level: str) -> None:
    """Raise DS2Error when the LM cannot score what the model writes: most of its vocabulary
    uses characters outside the model's alphabet, or its level does not suit the model."""
    if level == "word" and tokenizer.word_separator is None:
        raise DS2Error(f"{lm.path}: a word-level LM needs a model that writes word separators; "
                       f"this {tokenizer.language} character model needs a character LM (--lm-level char)")
    if not lm.vocab:
        return
    alphabet = alphabet_chars(tokenizer)
    if level == "char":
        units = set(alphabet) | ({CHAR_SPACE} if " " in tokenizer.vocab else set())
        bad = [w for w in lm.vocab if w not in units]
    else:
        bad = [w for w in lm.vocab if not set(w) <= alphabet]
    if len(bad) > 0.5 * len(lm.vocab):
        examples = ", ".join(repr(w) for w in bad[:3])
        raise DS2Error(f"{lm.path}: LM vocabulary does not fit the model's alphabet: {len(bad)} of "
                       f"{len(lm.vocab)} {'units' if level == 'char' else 'words'} use characters "
                       f"outside it (e.g. {examples}); build it from text normalised for this model "
                       f"(ds2cli lm build)")


def alphabet_chars(tokenizer) -> set[str]:
    """Characters the model can write inside a word."""
    from ds2cli.text import WORD_MARK

    chars = set()
    for unit in tokenizer.vocab[1:]:
        chars.update(unit.replace(WORD_MARK, ""))
    chars.discard(" ")
    return chars
