"""CTC decoding: greedy, and the prefix beam search of Deep Speech 2 (section 3.8) with the
character pruning of section 7.3.

The beam search maximises  log p_ctc(y|x) + alpha log p_lm(y) + beta word_count(y).
Prefixes live in a tree of nodes (integer ids with numpy columns for their properties), so a
prefix is one int. A surviving extension always becomes a new node: a prefix that re-enters the
beam later is a second node for the same text, which is cheaper than looking nodes up. (Two nodes
of one text could meet in a beam only if a prefix re-entered while its own extension was still
there: none did in 30 arctic dev utterances at beam 100, with or without an LM, and with an LM
recombination would keep the better one.) Each frame is processed for the whole beam at once
with numpy: the probabilities of staying (blank or repeated last token) and of every (prefix,
candidate token) extension form a (B, K) matrix, extensions that lead to a prefix already in the
beam are merged into it, the LM changes come from the scorer as (B, K) matrices, and the best
`beam_size` candidates are kept with argpartition. Only surviving extensions become nodes. With
an LM, survivors that agree on everything their future scores depend on (LM context, unfinished
word, last token) are then recombined: only the best stays, so spelling variants of an early
word cannot fill the beam (pyctcdecode prunes alike).
A frame where pruning leaves only the blank costs two vector ops.
BeamSearch holds the beam between calls, so a stream is decoded chunk by chunk with the same
result as beam_search on the whole utterance; GreedySearch does the same for greedy decoding."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ds2cli.decode import fast
from ds2cli.decode.config import DecodeConfig
from ds2cli.decode.lm_scorer import ROOT, Scorer

NEG_INF = -np.inf


@dataclass
class Hypothesis:
    """One decoded transcript. `frames[i]`: the output frame where `tokens[i]` was emitted (greedy),
    or where the prefix ending in it first entered the beam (beam search; for word times the
    front end aligns the final tokens with ds2cli.decode.timing instead)."""

    tokens: list[int]
    frames: list[int]
    score: float  # the search objective (log p_ctc + alpha log p_lm + beta words)
    ctc_score: float = 0.0  # log p_ctc of the prefix (summed over its alignments)
    lm_score: float = 0.0  # natural-log LM probability, </s> included
    words: int = 0
    extra: dict = field(default_factory=dict)


def greedy_search(log_probs: np.ndarray) -> Hypothesis:
    """Best path: the most probable token per frame, repeats merged, blanks removed.
    log_probs (T, V). The score is the best path's log-probability."""
    if len(log_probs) == 0:
        return Hypothesis([], [], 0.0)
    best = log_probs.argmax(-1)
    score = float(log_probs[np.arange(len(best)), best].sum())
    keep = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
    frames = np.nonzero(keep)[0]
    return Hypothesis(best[frames].tolist(), frames.tolist(), score, ctc_score=score)


class GreedySearch:
    """greedy_search fed frames as they come: the same tokens and frames (counted from the
    stream's start) for any chunking; the score is summed per chunk."""

    def __init__(self):
        self.frames = 0
        self.tokens: list[int] = []
        self.token_frames: list[int] = []
        self.score = 0.0
        self.last = 0  # the previous frame's best token (blank before the first frame)

    def advance(self, log_probs: np.ndarray) -> None:
        """log_probs (t, V), t >= 0."""
        if len(log_probs) == 0:
            return
        best = np.asarray(log_probs).argmax(-1)
        self.score += float(log_probs[np.arange(len(best)), best].sum())
        keep = (best != 0) & (best != np.concatenate([[self.last], best[:-1]]))
        frames = np.nonzero(keep)[0]
        self.tokens += best[frames].tolist()
        self.token_frames += (frames + self.frames).tolist()
        self.last = int(best[-1])
        self.frames += len(best)

    def best(self) -> Hypothesis:
        return Hypothesis(list(self.tokens), list(self.token_frames), self.score, ctc_score=self.score)

    def finish(self) -> list[Hypothesis]:
        """[the best path], as BeamSearch.finish returns its n-best."""
        return [self.best()]


def prune_log_probs(log_probs: np.ndarray, cutoff_prob: float = 0.99,
                    cutoff_top_n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DS2 character pruning (section 7.3), for all frames at once.

    Per frame, the most probable tokens (blank included), best first, until their cumulative
    probability reaches `cutoff_prob`, and never more than `cutoff_top_n`: both limits always
    apply (a cutoff of 1.0 still keeps only the top n).
    log_probs (T, V) -> ids (T, K), log-probs (T, K), counts (T,) with K = min(top_n, V);
    frame t keeps ids[t, :counts[t]]."""
    lp = np.asarray(log_probs, dtype=np.float64)
    n_frames, vocab = lp.shape
    k = min(cutoff_top_n, vocab)
    if k < vocab:
        part = np.argpartition(-lp, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(part, np.argsort(-np.take_along_axis(lp, part, 1), axis=1, kind="stable"), 1)
    else:
        order = np.argsort(-lp, axis=1, kind="stable")
    top = np.take_along_axis(lp, order, 1)
    if cutoff_prob >= 1.0:
        counts = np.full(n_frames, k)
    else:
        reached = np.cumsum(np.exp(top), axis=1) >= cutoff_prob
        counts = np.minimum(k, 1 + (~reached).sum(axis=1))  # up to and including the one that reaches it
    return order, top, counts


class _Nodes:
    """The prefix trie: node 0 is the empty prefix; columns grow by doubling."""

    COLUMNS = {"parent": np.int64, "token": np.int64, "frame": np.int64, "state": np.int64,
               "trie": np.int64, "comp": np.float64, "lm": np.float64, "nw": np.float64,
               "bonus": np.float64,  # alpha * lm + beta * nw of this search
               "future": np.int64}  # future: (state, trie, token) as one integer, for recombination

    def __init__(self, n_tokens: int, start_state: int, root_token: int | None = None, trie_span: int = 1,
                 capacity: int = 4096):
        self.n = 1
        self.key_base = n_tokens + 1
        self.trie_span = trie_span
        for name, dtype in self.COLUMNS.items():
            setattr(self, name, np.zeros(capacity, dtype=dtype))
        # the empty prefix behaves as if it ended in a word separator (leading spaces add nothing);
        # without separators it ends in the 'no token' sentinel, never equal to a real token
        self.token[0] = n_tokens if root_token is None else root_token
        self.frame[0] = -1
        self.parent[0] = -1  # slot[-1] is always -1: the root is nobody's extension
        self.state[0], self.trie[0] = start_state, ROOT
        self.future[0] = self.future_key(self.state[:1], self.trie[:1], self.token[:1])[0]
        # node -> position in the current beam, -1 outside it; one extra last entry for parent -1
        self.slot = np.full(capacity + 1, -1, dtype=np.int64)

    def future_key(self, state: np.ndarray, trie: np.ndarray, token: np.ndarray) -> np.ndarray:
        """One int64 per (LM state, trie node, last token): equal exactly when all three are
        (state ids < 2^24, tries < 2^24, tokens < 2^14 fit)."""
        return (state * self.trie_span + (trie + 1)) * self.key_base + token

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.parent):
            return
        size = max(need, 2 * len(self.parent))
        for name in self.COLUMNS:
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        self.slot = np.full(size + 1, -1, dtype=np.int64)  # empty between frames

    def path(self, node: int) -> tuple[list[int], list[int]]:
        tokens, frames = [], []
        while node != 0:
            tokens.append(int(self.token[node]))
            frames.append(int(self.frame[node]))
            node = int(self.parent[node])
        return tokens[::-1], frames[::-1]


class BeamSearch:
    """CTC prefix beam search over one utterance or stream, fed frames as they come.

    Pruning and every step are per frame, so feeding the frames in chunks of any size gives the
    same hypotheses as one call of beam_search on all of them. Node frames count from the start
    of the stream. The scorer's caches are trimmed when the search starts (`trim=False` where
    other searches share the scorer and are still running: trimming invalidates their states)."""

    def __init__(self, scorer: Scorer, opts: DecodeConfig = DecodeConfig(), trim: bool = True,
                 compiled: bool | None = None):
        if trim:
            scorer.trim()
        self.scorer, self.opts = scorer, opts
        # the compiled core (fast.py) where it runs this scorer, unless compiled=False
        self.compiled = fast.supports(scorer) and compiled is not False
        self.frames = 0  # frames consumed so far
        self.vocab: int | None = None
        self.recombine = opts.recombine and scorer.has_lm
        self.nodes: _Nodes | None = None  # made with the first frames, once the vocabulary is known
        self.beams = np.zeros(1, dtype=np.int64)
        # log p(prefix, ending in blank / in its last token)
        self.pb, self.pnb = np.zeros(1), np.full(1, NEG_INF)

    def _start(self, vocab: int) -> None:
        self.vocab = vocab
        self.nodes = _Nodes(vocab, self.scorer.start_state, self.scorer.separator, self.scorer.trie_span)
        self.frame_lp = np.full(vocab + 1, NEG_INF)  # this frame's non-blank log-probs; [vocab] = no token
        self.column = np.full(vocab + 1, -1, dtype=np.int64)  # token -> candidate column this frame
        if self.compiled:  # the beam in fixed buffers that the core updates in place
            width = self.opts.beam_size
            self.beam_buf, self.pb_buf = np.zeros(width, dtype=np.int64), np.zeros(width)
            self.pnb_buf = np.full(width, NEG_INF)
            self.n_beams = 1
            self.missing = np.zeros((width, 2), dtype=np.int64)

    def advance(self, log_probs: np.ndarray, pruned: tuple | None = None) -> None:
        """Consume the next frames: log_probs (t, V) natural-log CTC posteriors (blank = 0),
        t >= 0. `pruned` may pass prune_log_probs of these frames."""
        log_probs = np.asarray(log_probs, dtype=np.float64)
        n_frames, vocab = log_probs.shape
        if self.nodes is None:
            self._start(vocab)
        elif vocab != self.vocab:
            raise ValueError(f"emissions have {vocab} tokens per frame, the stream has {self.vocab}")
        if n_frames == 0:
            return
        opts, scorer, nodes = self.opts, self.scorer, self.nodes
        if self.compiled:
            fast.run_frames(self, *(_tokens_per_frame(*pruned) if pruned is not None else
                                    fast.prune(log_probs, opts.cutoff_prob, opts.cutoff_top_n)))
            n = self.n_beams
            self.beams, self.pb, self.pnb = self.beam_buf[:n], self.pb_buf[:n], self.pnb_buf[:n]
            self.frames += n_frames
            return
        ids, tops, counts = pruned if pruned is not None else prune_log_probs(
            log_probs, opts.cutoff_prob, opts.cutoff_top_n)
        all_toks, all_tok_lp, n_toks, blank_lp = _tokens_per_frame(ids, tops, counts)
        positions = np.arange(all_toks.shape[1])
        alpha, beta, width = opts.alpha, opts.beta, opts.beam_size
        sep = scorer.separator
        recombine = self.recombine
        frame_lp, column = self.frame_lp, self.column
        beams, pb, pnb = self.beams, self.pb, self.pnb

        for t in range(n_frames):
            n = n_toks[t]
            if n == 0:  # only the blank survives pruning
                pb = np.logaddexp(pb, pnb) + blank_lp[t]
                pnb = np.full(len(beams), NEG_INF)
                continue
            toks, tok_lp = all_toks[t, :n], all_tok_lp[t, :n]
            frame_lp[toks], column[toks] = tok_lp, positions[:n]
            total = np.logaddexp(pb, pnb)
            last = nodes.token[beams]
            stay_b = total + blank_lp[t]
            stay_nb = pnb + frame_lp[last]  # the last token repeated (collapses into the same prefix)
            # extending by the last token needs a blank in between, so only p_b feeds it
            ext = np.where(last[:, None] == toks, pb[:, None], total[:, None]) + tok_lp
            if sep is not None and column[sep] >= 0:
                _merge_double_separator(sep, column[sep], last, ext, stay_nb)
            _merge_existing(nodes, beams, ext, stay_nb, column)
            comp = nodes.comp[beams]
            dlm, dnw = scorer.ext_delta(nodes.state[beams], nodes.trie[beams], comp, toks)
            nodes.comp[beams] = comp  # keep the LM lookups ext_delta made
            bonus = nodes.bonus[beams]
            ext_bonus = alpha * dlm + beta * dnw + bonus[:, None]  # the extensions' bonus columns
            scores = np.concatenate([np.logaddexp(stay_b, stay_nb) + bonus, (ext + ext_bonus).ravel()])
            # the best `width` candidates, ties to the lower index, in index order
            keep = np.sort(np.argsort(-scores, kind="stable")[:width]) if len(scores) > width else np.arange(len(scores))
            kept_scores = scores[keep]
            within = kept_scores > max(kept_scores.max() - opts.beam_threshold, NEG_INF)  # and possible
            keep, kept_scores = keep[within], kept_scores[within]
            is_ext = keep >= len(beams)
            stays, exts = keep[~is_ext], keep[is_ext]
            rows, cols = np.divmod(exts - len(beams), n)
            parents = beams[rows]
            children = _new_children(nodes, scorer, parents, toks[cols], self.frames + t,
                                     nodes.lm[parents] + dlm[rows, cols], nodes.nw[parents] + dnw[rows, cols],
                                     ext_bonus[rows, cols])
            beams = np.concatenate([beams[stays], children])
            pb = np.full(len(beams), NEG_INF)
            pb[: len(stays)] = stay_b[stays]
            pnb = np.concatenate([stay_nb[stays], ext[rows, cols]])
            if recombine and len(beams) > 1:
                kept = _recombine(nodes, beams, np.concatenate([kept_scores[~is_ext], kept_scores[is_ext]]))
                if kept is not None:
                    beams, pb, pnb = beams[kept], pb[kept], pnb[kept]
            frame_lp[toks], column[toks] = NEG_INF, -1

        self.beams, self.pb, self.pnb = beams, pb, pnb
        self.frames += n_frames

    def best(self) -> Hypothesis:
        """The best prefix so far, scored without finishing its last word or </s> (cheap: for
        partial results)."""
        if self.nodes is None:
            return Hypothesis([], [], 0.0)
        nodes, beams = self.nodes, self.beams
        if self.compiled:  # one call instead of a dozen small array operations: it runs every chunk
            i, total_i, tokens, frames = fast.best(self)
            node = beams[i]
            return Hypothesis(tokens.tolist(), frames.tolist(), float(total_i + nodes.bonus[node]), float(total_i),
                              float(nodes.lm[node]), int(nodes.nw[node]))
        total = np.logaddexp(self.pb, self.pnb)
        i = int(np.argmax(total + nodes.bonus[beams]))
        tokens, frames = nodes.path(int(beams[i]))
        return Hypothesis(tokens, frames, float(total[i] + nodes.bonus[beams[i]]), float(total[i]),
                          float(nodes.lm[beams[i]]), int(nodes.nw[beams[i]]))

    def finish(self) -> list[Hypothesis]:
        """Up to `opts.nbest` hypotheses, best first, with their unfinished words and </s>
        scored. The search can go on after it (finishing changes nothing in it)."""
        nodes = self.nodes if self.nodes is not None else _Nodes(  # no frames yet: the empty prefix
            1, self.scorer.start_state, self.scorer.separator, self.scorer.trie_span)
        return _finish(nodes, self.scorer, self.beams, self.pb, self.pnb, self.opts)


def beam_search(log_probs: np.ndarray, scorer: Scorer, opts: DecodeConfig = DecodeConfig(),
                pruned: tuple | None = None) -> list[Hypothesis]:
    """CTC prefix beam search with LM shallow fusion and character pruning, on a whole utterance.

    log_probs (T, V) natural-log CTC posteriors (blank = 0). `pruned` may pass the result of
    prune_log_probs for these emissions (it does not depend on alpha/beta, so tuning reuses it).
    Returns up to `opts.nbest` hypotheses, best first."""
    search = BeamSearch(scorer, opts)
    search.advance(log_probs, pruned)
    return search.finish()


def _tokens_per_frame(ids: np.ndarray, tops: np.ndarray, counts: np.ndarray):
    """prune_log_probs' output rearranged for the search loop: per frame the surviving non-blank
    tokens, best first, as a row prefix (so a frame's tokens are a slice, not a selection).
    (T, K), (T, K), (T,) -> tokens (T, K), their log-probs (T, K), how many (T,), and the
    blank's log-prob (T,) (-inf where pruning dropped it)."""
    alive = np.arange(ids.shape[1])[None, :] < counts[:, None]
    blank = alive & (ids == 0)
    order = np.argsort(blank | ~alive, axis=1, kind="stable")  # surviving non-blanks first
    blank_lp = np.where(blank, tops, NEG_INF).max(axis=1)
    return (np.take_along_axis(ids, order, 1), np.take_along_axis(tops, order, 1),
            (alive & ~blank).sum(axis=1), blank_lp)


def _recombine(nodes: _Nodes, beams: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Positions of the beams to keep when prefixes that agree on everything their future
    depends on are recombined: the LM state after their last complete word (KenLM keeps only the
    context it still needs), their unfinished word and their last token. Every continuation then
    changes their LM score and word count alike, so only the best can win; the others only take
    slots from different hypotheses. (It is not exact for p_ctc, whose future also depends on
    how a prefix's probability splits between ending in blank and in its last token; pyctcdecode
    prunes the same way.) beams, scores (N,) -> sorted positions, or None to keep them all."""
    future = nodes.future[beams]
    order = np.lexsort((-scores, future))  # grouped by future, best first within a group
    future = future[order]
    first = np.concatenate([[True], future[1:] != future[:-1]])
    return None if first.all() else np.sort(order[first])


def _merge_double_separator(sep: int, sep_column: int, last: np.ndarray, ext: np.ndarray,
                            stay_nb: np.ndarray) -> None:
    """A second space after a space (a blank between) spells the same text, so it stays in the
    same prefix instead of opening a twin that would split the probability and take a beam slot
    (pyctcdecode merges these by text too). Modifies ext and stay_nb in place."""
    rows = np.nonzero(last == sep)[0]
    stay_nb[rows] = np.logaddexp(stay_nb[rows], ext[rows, sep_column])
    ext[rows, sep_column] = NEG_INF


def _merge_existing(nodes: _Nodes, beams: np.ndarray, ext: np.ndarray, stay_nb: np.ndarray,
                    column: np.ndarray) -> None:
    """An extension (parent i, token j) whose child is already in the beam adds its probability
    to that child's p_nb instead of competing with it. `column` maps this frame's candidate
    tokens to their columns of ext (-1: not a candidate). Modifies ext and stay_nb in place."""
    nodes.slot[beams] = np.arange(len(beams))
    parent_slot = nodes.slot[nodes.parent[beams]]
    token_col = column[nodes.token[beams]]
    hit = np.nonzero((parent_slot | token_col) >= 0)[0]  # both >= 0 (-1 has every bit set)
    if len(hit):
        i, j = parent_slot[hit], token_col[hit]
        stay_nb[hit] = np.logaddexp(stay_nb[hit], ext[i, j])
        ext[i, j] = NEG_INF
    nodes.slot[beams] = -1


def _new_children(nodes: _Nodes, scorer: Scorer, parents: np.ndarray, tokens: np.ndarray, frame: int,
                  lm: np.ndarray, nw: np.ndarray, bonus: np.ndarray) -> np.ndarray:
    """Ids of new nodes parent+token, with their LM state, and their LM log-probability, word
    count and bonus so far. (N,) arrays -> (N,)"""
    n = len(parents)
    nodes.reserve(n)
    idx = np.arange(nodes.n, nodes.n + n)
    state, trie, comp = scorer.children(nodes.state[parents], nodes.trie[parents], tokens)
    nodes.parent[idx], nodes.token[idx], nodes.frame[idx] = parents, tokens, frame
    nodes.state[idx], nodes.trie[idx], nodes.comp[idx] = state, trie, comp
    nodes.future[idx] = nodes.future_key(np.asarray(state), np.asarray(trie), tokens)
    nodes.lm[idx], nodes.nw[idx], nodes.bonus[idx] = lm, nw, bonus
    nodes.n += n
    return idx


def _finish(nodes: _Nodes, scorer: Scorer, beams, pb, pnb, opts: DecodeConfig) -> list[Hypothesis]:
    """Finish unfinished words, add </s>, and return the n best."""
    total = np.logaddexp(pb, pnb)
    end_lm, end_nw = scorer.final(nodes.state[beams], nodes.trie[beams], nodes.comp[beams])
    lm = nodes.lm[beams] + end_lm
    nw = nodes.nw[beams] + end_nw
    final = total + opts.alpha * lm + opts.beta * nw
    out = []
    for i in np.argsort(-final, kind="stable")[: opts.nbest]:
        tokens, frames = nodes.path(int(beams[i]))
        out.append(Hypothesis(tokens, frames, float(final[i]), float(total[i]), float(lm[i]), int(nw[i])))
    return out
