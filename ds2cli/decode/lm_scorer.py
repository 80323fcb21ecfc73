"""The language-model side of the prefix beam search.

Every prefix in the search carries three small numbers that the scorer understands:
- `state`: the KenLM context after its last complete word (an integer id),
- `trie`: where its unfinished word stands in a character trie of the LM's vocabulary
  (ROOT: no unfinished word; OOV: it cannot become a known word any more),
- `comp`: the LM log-probability of finishing that word now.
The search asks the scorer, for a whole beam at once, how appending each candidate token changes
the LM log-probability and the word count (`ext_delta`), and creates children only for the few
extensions that survive (`child`). Scores are cached per (state, word), so each n-gram is looked
up in KenLM once per utterance set.

Word level (English characters or sentencepiece units): a word is scored when it completes (at a
space, at a unit that starts a new word, or at the end). An out-of-vocabulary word costs KenLM's
<unk> probability plus `unk_offset`, charged as soon as the spelling leaves the vocabulary, so
such prefixes fall behind early instead of at the next space.
With `unk_char_offset` < 0 an out-of-vocabulary word costs that much per character instead
(charged character by character as it is spelled, no <unk> probability), so the cost of unknown
speech does not depend on how it is cut into words: gluing unknown words into one long non-word
never pays (splitting earns the word bonus beta), and deletions of spaces do not rise.
Character level (Mandarin): every character is an LM unit, scored as it is emitted.
"""
from __future__ import annotations

import numpy as np

from ds2cli.decode.lm import CHAR_SPACE, KenLM, vocab_path
from ds2cli.errors import DS2Error
from ds2cli.text import WORD_MARK

ROOT = 0  # trie node of the empty word
OOV = -1  # trie "node" of a spelling that no vocabulary word starts with

CONT, SEP, START = 0, 1, 2  # token kinds: continues a word / ends one (space) / starts a new one (▁x)


def token_kinds(tokenizer) -> tuple[list[int], list[str]]:
    """Kind and in-word text of every token id (the blank included, as CONT "")."""
    kinds, texts = [CONT], [""]
    bpe = tokenizer.word_separator == WORD_MARK
    for unit in tokenizer.vocab[1:]:
        if bpe and unit.startswith(WORD_MARK):
            kinds.append(START)
            texts.append(unit[len(WORD_MARK):])
        elif not bpe and unit == " ":
            kinds.append(SEP)
            texts.append("")
        else:
            kinds.append(CONT)
            texts.append(unit)
    return kinds, texts


MAX_CACHED = 2_000_000  # cached LM scores kept between utterances (a few hundred MB at most)


class Scorer:
    """Interface used by the beam search; see the module docstring."""

    start_state = 0
    separator: int | None = None  # the token id of the space between words, if there is one
    has_lm = False  # whether a language model shapes the scores (the state then holds its context)
    trie_span = 1  # trie ids + 1 lie in [0, trie_span)

    def trim(self, limit: int = MAX_CACHED) -> None:
        """Drop the LM caches if they have grown past `limit` entries. Only between utterances:
        state ids held by a running search become invalid."""

    def ext_delta(self, state: np.ndarray, trie: np.ndarray, comp: np.ndarray,
                  tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For B prefixes and K candidate tokens (no blank): the change in LM log-probability and
        in word count when each token is appended. Inputs (B,), (B,), (B,), (K,) -> (B, K) x 2.
        `comp` may hold NaN where children() left it unknown; those needed are filled in place."""
        raise NotImplementedError

    def child(self, state: int, trie: int, token: int) -> tuple[int, int, float]:
        """(state, trie, comp) of a prefix extended by `token`."""
        raise NotImplementedError

    def children(self, state: np.ndarray, trie: np.ndarray, tokens: np.ndarray):
        """child() for N (prefix, token) pairs: (N,) x 3 -> state, trie, comp arrays (N,)."""
        out = [self.child(s, t, k) for s, t, k in zip(state.tolist(), trie.tolist(), tokens.tolist())]
        return [c[0] for c in out], [c[1] for c in out], [c[2] for c in out]

    def final(self, state: np.ndarray, trie: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LM log-probability and word count added at the end of the utterance (finishing the
        unfinished word, then </s>). (B,) arrays -> (B,), (B,)"""
        raise NotImplementedError


class WordScorer(Scorer):
    """Word-level scoring with a KenLM model, or word counting only when `lm` is None."""

    def __init__(self, tokenizer, lm: KenLM | None = None, unk_offset: float = -10.0,
                 unk_char_offset: float = 0.0):
        if lm is not None and not lm.vocab:
            raise DS2Error(f"{lm.path}: no vocabulary for this KenLM binary (expected {vocab_path(lm.path)}, "
                           f"which `ds2cli lm build` writes); pass the ARPA file instead")
        kinds, texts = token_kinds(tokenizer)
        self.lm, self.unk_offset, self.unk_char = lm, unk_offset, unk_char_offset
        self.has_lm = lm is not None
        self.kinds, self.texts = kinds, texts
        self.boundary = np.array([k != CONT for k in kinds] + [False])  # (V+1,)
        self._build_trie(lm.vocab if lm is not None and lm.vocab else None)
        self.start_state = lm.start_state if lm is not None else 0
        self.separator = kinds.index(SEP) if SEP in kinds else None
        self._step_cache: dict[int, int] = {}
        self._word_cache: dict[int, tuple[float, int]] = {}
        self.generation = 0  # counts trim()s that dropped the caches (the compiled core's copy follows)
        self._end_cache: dict[int, float] = {}
        self.table = self._dense_table(tokenizer) if all(len(t) <= 1 for t in texts) else None
        # which (trie, token) steps leave the vocabulary and pay unk_offset (see ext_delta)
        self.leaves_vocab = (None if self.table is None else
                             (self.table < 0) & ((np.arange(len(self.table)) < len(self.words))[:, None]
                                                 | self.boundary[None, :]))
        self.trie_span = len(self.words) + 1  # trie ids -1 .. n-1, for integer keys
        self.token_chars = np.array([len(t) for t in texts] + [0])  # (V+1,) characters per token
        self.cont = np.array([k == CONT for k in kinds] + [False]) & (self.token_chars > 0)

    # -- the vocabulary trie ------------------------------------------------------------------
    def _build_trie(self, vocab: list[str] | None) -> None:
        """Character trie of the vocabulary. Without one (no LM, or an LM whose words are not
        known), every spelling stays "in vocabulary": node 1 just means "a word has begun"."""
        self.has_vocab = vocab is not None
        self.edges: dict[tuple[int, str], int] = {}
        self.words: list[str | None] = [None]
        depth = [0]
        if vocab is None:
            self.words.append(None)  # node 1: some unfinished word
            self.depth = np.zeros(3, dtype=np.int64)
            return
        for word in vocab:
            node = ROOT
            for ch in word:
                nxt = self.edges.get((node, ch))
                if nxt is None:
                    nxt = self.edges[(node, ch)] = len(self.words)
                    self.words.append(None)
                    depth.append(depth[node] + 1)
                node = nxt
            self.words[node] = word
        self.depth = np.array(depth + [0], dtype=np.int64)  # characters spelled at each node (OOV: -1 -> 0)

    def _walk(self, node: int, text: str) -> int:
        if not self.has_vocab:
            return node if not text else 1
        for ch in text:
            if node < 0:
                return OOV
            node = self.edges.get((node, ch), OOV)
        return node

    def step(self, trie: int, token: int) -> int:
        """Trie node after appending `token` to an unfinished word at node `trie`."""
        kind = self.kinds[token]
        if kind == SEP:
            return ROOT
        return self._walk(ROOT if kind == START else trie, self.texts[token])

    def _dense_table(self, tokenizer) -> np.ndarray:
        """step() as a lookup table for character alphabets: table[trie, token], with an extra
        last row for OOV (so that index -1 works) and a column for the 'no token' sentinel."""
        n_nodes, n_tok = len(self.words), len(self.kinds)
        table = np.full((n_nodes + 1, n_tok + 1), OOV, dtype=np.int32)  # int32: large vocabularies
        for token in range(1, n_tok):
            if self.kinds[token] == SEP:
                table[:, token] = ROOT
            elif self.kinds[token] == START or not self.has_vocab:
                table[:, token] = self.step(ROOT, token)
        if self.has_vocab:
            column = {t: i for i, t in enumerate(self.texts) if i and self.kinds[i] == CONT}
            for (node, ch), nxt in self.edges.items():
                if ch in column:
                    table[node, column[ch]] = nxt
        return table

    def _steps(self, trie: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """step() for every (prefix, token) pair. (B,), (K,) -> (B, K)"""
        if self.table is not None:
            return self.table[trie[:, None], tokens[None, :]]
        out = np.empty((len(trie), len(tokens)), dtype=np.int64)
        uniq, inverse = np.unique(trie, return_inverse=True)
        rows = np.empty((len(uniq), len(tokens)), dtype=np.int64)
        cache, n_tok = self._step_cache, len(self.kinds) + 1
        for r, node in enumerate(uniq.tolist()):
            for c, token in enumerate(tokens.tolist()):
                key = (node + 1) * n_tok + token
                nxt = cache.get(key)
                if nxt is None:
                    nxt = cache[key] = self.step(node, token)
                rows[r, c] = nxt
        out[:] = rows[inverse.reshape(-1)]
        return out

    def trim(self, limit: int = MAX_CACHED) -> None:
        if self.lm is not None and len(self._word_cache) + self.lm.n_states > limit:
            self.generation += 1
            self._word_cache.clear()
            self._end_cache.clear()
            self.lm.reset()
            self.start_state = self.lm.start_state

    # -- LM scores ------------------------------------------------------------------------------
    def complete(self, state: int, trie: int) -> tuple[float, int]:
        """LM log-probability of finishing the unfinished word at `trie` now, and the next state.
        A spelling that is a prefix of known words but not a word itself is out of vocabulary,
        and pays the offset here (one that left the vocabulary paid it when it left)."""
        if self.lm is None or trie == ROOT:
            return 0.0, state
        key = state * self.trie_span + trie + 1
        hit = self._word_cache.get(key)
        if hit is None:
            word = self.words[trie] if trie >= 0 else None
            lp, nxt = self.lm.score(state, word if word is not None else "<unk>")
            if word is None and self.unk_char:  # charged per character instead (see ext_delta)
                lp = self.unk_char * self.depth[trie] if trie >= 0 else 0.0
            elif word is None and trie >= 0:
                lp += self.unk_offset
            hit = self._word_cache[key] = (lp, nxt)
        return hit

    def ext_delta(self, state, trie, comp, tokens):
        bnd = self.boundary[tokens]  # (K,)
        unfinished = trie != ROOT
        if self.lm is not None and bnd.any():
            missing = unfinished & np.isnan(comp)
            if missing.any():  # children() left comp to be looked up when a word can end (in place)
                comp[missing] = [self.complete(s, t)[0]
                                 for s, t in zip(state[missing].tolist(), trie[missing].tolist())]
        ends = unfinished[:, None] & bnd  # (B, K): the token completes an unfinished word
        dlm = np.where(ends, comp[:, None], 0.0)
        if self.lm is not None:
            # a spelling pays the offset when it leaves the vocabulary: a known spelling that no
            # word continues, or a new word (after a boundary) that no word starts like
            if self.leaves_vocab is not None:
                leaves = self.leaves_vocab[trie[:, None], tokens]
            else:
                leaves = (self._steps(trie, tokens) < 0) & ((trie >= 0)[:, None] | bnd)
            if self.unk_char:
                dlm += self.unk_char * self._unknown_chars(trie, tokens, leaves, bnd)
            else:
                dlm += leaves * self.unk_offset
        return dlm, ends.astype(np.float64)

    def _unknown_chars(self, trie, tokens, leaves, bnd) -> np.ndarray:
        """Characters of unknown words spelled by appending each token: all of the word so far
        when the token makes it leave the vocabulary, the token's own once it has. (B, K)"""
        chars = self.token_chars[tokens][None, :]  # (1, K)
        so_far = np.where(bnd[None, :], 0, self.depth[trie][:, None])  # a boundary starts a new word
        return leaves * (so_far + chars) + ((trie < 0)[:, None] & self.cont[tokens][None, :]) * chars

    def child(self, state, trie, token):
        if self.kinds[token] != CONT and trie != ROOT:
            _, state = self.complete(state, trie)
        nxt = self.step(trie, token)
        return state, nxt, self.complete(state, nxt)[0]

    def children(self, state, trie, tokens):
        if self.table is None:
            return super().children(state, trie, tokens)
        nxt = self.table[trie, tokens]
        state = state.copy()
        if self.lm is None:
            return state, nxt, np.zeros(len(state))
        ends = np.nonzero(self.boundary[tokens] & (trie != ROOT))[0]
        if len(ends):
            state[ends] = [self.complete(s, t)[1] for s, t in zip(state[ends].tolist(), trie[ends].tolist())]
        # comp (NaN: not looked up yet) is found by ext_delta once a word-ending token is a
        # candidate: most prefixes never meet one, so their LM lookup is never made
        return state, nxt, np.where(nxt == ROOT, 0.0, np.nan)

    def final(self, state, trie, comp):
        unfinished = trie != ROOT
        if self.lm is None:
            return np.zeros(len(state)), unfinished.astype(np.float64)
        lp = np.empty(len(state))
        for i, (s, t) in enumerate(zip(state.tolist(), trie.tolist())):
            c, s2 = self.complete(s, t)
            end = self._end_cache.get(s2)
            if end is None:
                end = self._end_cache[s2] = self.lm.end_score(s2)
            lp[i] = c + end
        return lp, unfinished.astype(np.float64)


class CharScorer(Scorer):
    """Character-level scoring: every token is an LM unit (Mandarin characters; English letters
    with the space spelled "|"). Each Mandarin character counts as a word for beta; for English,
    each space does."""

    def __init__(self, tokenizer, lm: KenLM, unk_offset: float = -10.0):
        self.lm, self.unk_offset = lm, unk_offset
        self.has_lm = True
        units = [CHAR_SPACE if u == " " else u for u in tokenizer.vocab]
        self.units = units
        spaced = " " in tokenizer.vocab
        self.word_of = [0.0] + [float(u == CHAR_SPACE or not spaced) for u in units[1:]]
        self.known = [u in lm for u in units]
        self.start_state = lm.start_state
        self.separator = units.index(CHAR_SPACE) if CHAR_SPACE in units else None
        self._cache: dict[int, tuple[float, int]] = {}
        self._end_cache: dict[int, float] = {}
        self._n = len(units)

    def trim(self, limit: int = MAX_CACHED) -> None:
        if len(self._cache) + self.lm.n_states > limit:
            self._cache.clear()
            self._end_cache.clear()
            self.lm.reset()
            self.start_state = self.lm.start_state

    def _score(self, state: int, token: int) -> tuple[float, int]:
        key = state * self._n + token
        hit = self._cache.get(key)
        if hit is None:
            lp, nxt = self.lm.score(state, self.units[token])
            if not self.known[token]:
                lp += self.unk_offset
            hit = self._cache[key] = (lp, nxt)
        return hit

    def ext_delta(self, state, trie, comp, tokens):
        toks = tokens.tolist()
        uniq, inverse = np.unique(state, return_inverse=True)
        rows = np.array([[self._score(s, t)[0] for t in toks] for s in uniq.tolist()])
        dnw = np.broadcast_to(np.array([self.word_of[t] for t in toks]), (len(state), len(toks)))
        return rows[inverse.reshape(-1)], dnw

    def child(self, state, trie, token):
        return self._score(state, token)[1], ROOT, 0.0

    def final(self, state, trie, comp):
        lp = np.empty(len(state))
        for i, s in enumerate(state.tolist()):
            end = self._end_cache.get(s)
            if end is None:
                end = self._end_cache[s] = self.lm.end_score(s)
            lp[i] = end
        return lp, np.zeros(len(state))


class UnitCounter(Scorer):
    """No LM, no word separators (Mandarin without an LM): every character counts as a word."""

    def ext_delta(self, state, trie, comp, tokens):
        shape = (len(state), len(tokens))
        return np.zeros(shape), np.ones(shape)

    def child(self, state, trie, token):
        return 0, ROOT, 0.0

    def final(self, state, trie, comp):
        return np.zeros(len(state)), np.zeros(len(state))


def make_scorer(tokenizer, lm: KenLM | None, level: str = "word", unk_offset: float = -10.0,
                unk_char_offset: float = 0.0) -> Scorer:
    """The scorer for a model's tokenizer and an optional LM of the given level."""
    if lm is None:
        return WordScorer(tokenizer, None) if tokenizer.word_separator is not None else UnitCounter()
    if level == "char":
        return CharScorer(tokenizer, lm, unk_offset)
    return WordScorer(tokenizer, lm, unk_offset, unk_char_offset)
