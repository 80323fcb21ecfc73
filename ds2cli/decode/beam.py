"""CTC decoding: greedy, and the prefix beam search of Deep Speech 2 (section 3.8) with the
character pruning of section 7.3.

The beam search maximises  log p_ctc(y|x) + alpha log p_lm(y) + beta word_count(y).
Prefixes live in a trie of nodes (integer ids with numpy columns for their properties), so a
prefix is one int and extending it is a dict lookup. Each frame is processed for the whole
beam at once with numpy: the probabilities of staying (blank or repeated last token) and of
every (prefix, candidate token) extension form a (B, K) matrix, extensions that lead to a
prefix already in the beam are merged into it, the LM changes come from the scorer as (B, K)
matrices, and the best `beam_size` candidates are kept with argpartition. Only surviving
extensions become nodes. With an LM, survivors that agree on everything their future scores
depend on (LM context, unfinished word, last token) are then recombined: only the best stays,
so spelling variants of an early word cannot fill the beam (pyctcdecode prunes alike).
A frame where pruning leaves only the blank costs two vector ops."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ds2cli.decode.config import BeamOptions
from ds2cli.decode.scorer import ROOT, Scorer

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
               "future": np.int64}  # future: (state, trie, token) as one integer, for recombination

    def __init__(self, n_tokens: int, start_state: int, root_token: int | None = None, trie_span: int = 1,
                 capacity: int = 4096):
        self.n = 1
        self.key_base = n_tokens + 1
        self.trie_span = trie_span
        self.children: dict[int, int] = {}
        for name, dtype in self.COLUMNS.items():
            setattr(self, name, np.zeros(capacity, dtype=dtype))
        # the empty prefix behaves as if it ended in a word separator (leading spaces add nothing);
        # without separators it ends in the 'no token' sentinel, never equal to a real token
        self.token[0] = n_tokens if root_token is None else root_token
        self.frame[0] = -1
        self.state[0], self.trie[0] = start_state, ROOT
        self.future[0] = self.future_key(self.state[:1], self.trie[:1], self.token[:1])[0]
        self.slot = np.full(capacity, -1, dtype=np.int64)  # node -> position in the current beam

    def future_key(self, state: np.ndarray, trie: np.ndarray, token: np.ndarray) -> np.ndarray:
        """One int64 per (LM state, trie node, last token): equal exactly when all three are
        (state ids < 2^24, tries < 2^24, tokens < 2^14 fit)."""
        return (state * self.trie_span + (trie + 1)) * self.key_base + token

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.parent):
            return
        size = max(need, 2 * len(self.parent))
        for name in list(self.COLUMNS) + ["slot"]:
            old = getattr(self, name)
            new = np.full(size, -1, dtype=old.dtype) if name == "slot" else np.zeros(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def path(self, node: int) -> tuple[list[int], list[int]]:
        tokens, frames = [], []
        while node != 0:
            tokens.append(int(self.token[node]))
            frames.append(int(self.frame[node]))
            node = int(self.parent[node])
        return tokens[::-1], frames[::-1]


def beam_search(log_probs: np.ndarray, scorer: Scorer, opts: BeamOptions = BeamOptions(),
                pruned: tuple | None = None) -> list[Hypothesis]:
    """CTC prefix beam search with LM shallow fusion and character pruning.

    log_probs (T, V) natural-log CTC posteriors (blank = 0). `pruned` may pass the result of
    prune_log_probs for these emissions (it does not depend on alpha/beta, so tuning reuses it).
    Returns up to `opts.nbest` hypotheses, best first."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    n_frames, vocab = log_probs.shape
    scorer.trim()
    ids, tops, counts = pruned if pruned is not None else prune_log_probs(
        log_probs, opts.cutoff_prob, opts.cutoff_top_n)
    alpha, beta, width = opts.alpha, opts.beta, opts.beam_size
    sep = scorer.separator
    nodes = _Nodes(vocab, scorer.start_state, sep, scorer.trie_span)
    beams = np.zeros(1, dtype=np.int64)
    pb, pnb = np.zeros(1), np.full(1, NEG_INF)  # log p(prefix, ending in blank / in its last token)
    frame_lp = np.full(vocab + 1, NEG_INF)  # this frame's pruned log-probs; [vocab] = no token
    column = np.full(vocab + 1, -1, dtype=np.int64)  # token -> candidate column this frame

    for t in range(n_frames):
        k = counts[t]
        cand, cand_lp = ids[t, :k], tops[t, :k]
        if k == 1 and cand[0] == 0:  # only the blank survives pruning
            pb = np.logaddexp(pb, pnb) + cand_lp[0]
            pnb = np.full(len(beams), NEG_INF)
            continue
        frame_lp[cand] = cand_lp
        total = np.logaddexp(pb, pnb)
        last = nodes.token[beams]
        stay_b = total + frame_lp[0]
        stay_nb = pnb + frame_lp[last]  # the last token repeated (collapses into the same prefix)
        nonblank = cand != 0
        toks, tok_lp = cand[nonblank], cand_lp[nonblank]
        # extending by the last token needs a blank in between, so only p_b feeds it
        ext = np.where(last[:, None] == toks[None, :], pb[:, None], total[:, None]) + tok_lp[None, :]
        if sep is not None:
            _merge_double_separator(sep, last, toks, ext, stay_nb)
        _merge_existing(nodes, beams, toks, ext, stay_nb, column)
        state, trie = nodes.state[beams], nodes.trie[beams]
        comp = nodes.comp[beams]
        dlm, dnw = scorer.ext_delta(state, trie, comp, toks)
        nodes.comp[beams] = comp  # keep the LM lookups ext_delta made
        bonus = alpha * nodes.lm[beams] + beta * nodes.nw[beams]
        stay_total = np.logaddexp(stay_b, stay_nb)
        scores = np.concatenate([stay_total + bonus,
                                 (ext + alpha * dlm + beta * dnw + bonus[:, None]).ravel()])
        keep = np.argpartition(-scores, width - 1)[:width] if len(scores) > width else np.arange(len(scores))
        floor = max(scores[keep].max() - opts.beam_threshold, NEG_INF)
        keep = keep[scores[keep] > floor]  # within the threshold of the best, and possible
        stays, exts = keep[keep < len(beams)], keep[keep >= len(beams)]
        rows, cols = np.divmod(exts - len(beams), len(toks))
        children = _children(nodes, scorer, beams[rows], toks[cols], t,
                             nodes.lm[beams[rows]] + dlm[rows, cols], nodes.nw[beams[rows]] + dnw[rows, cols])
        beams = np.concatenate([beams[stays], children])
        pb = np.concatenate([stay_b[stays], np.full(len(children), NEG_INF)])
        pnb = np.concatenate([stay_nb[stays], ext[rows, cols]])
        if opts.recombine and scorer.has_lm and len(beams) > 1:
            kept = _recombine(nodes, beams, np.concatenate([scores[stays], scores[exts]]))
            beams, pb, pnb = beams[kept], pb[kept], pnb[kept]
        frame_lp[cand] = NEG_INF

    return _finish(nodes, scorer, beams, pb, pnb, opts)


def _recombine(nodes: _Nodes, beams: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Positions of the beams to keep when prefixes that agree on everything their future
    depends on are recombined: the LM state after their last complete word (KenLM keeps only the
    context it still needs), their unfinished word and their last token. Every continuation then
    changes their LM score and word count alike, so only the best can win; the others only take
    slots from different hypotheses. (It is not exact for p_ctc, whose future also depends on
    how a prefix's probability splits between ending in blank and in its last token; pyctcdecode
    prunes the same way.) beams, scores (N,) -> sorted positions."""
    future = nodes.future[beams]
    order = np.lexsort((-scores, future))  # grouped by future, best first within a group
    future = future[order]
    first = np.concatenate([[True], future[1:] != future[:-1]])
    return np.sort(order[first])


def _merge_double_separator(sep: int, last: np.ndarray, toks: np.ndarray, ext: np.ndarray,
                            stay_nb: np.ndarray) -> None:
    """A second space after a space (a blank between) spells the same text, so it stays in the
    same prefix instead of opening a twin that would split the probability and take a beam slot
    (pyctcdecode merges these by text too). Modifies ext and stay_nb in place."""
    j = np.nonzero(toks == sep)[0]
    if len(j):
        rows = np.nonzero(last == sep)[0]
        stay_nb[rows] = np.logaddexp(stay_nb[rows], ext[rows, j[0]])
        ext[rows, j[0]] = NEG_INF


def _merge_existing(nodes: _Nodes, beams: np.ndarray, toks: np.ndarray, ext: np.ndarray,
                    stay_nb: np.ndarray, column: np.ndarray) -> None:
    """An extension (parent i, token j) whose child is already in the beam adds its probability
    to that child's p_nb instead of competing with it. Modifies ext and stay_nb in place."""
    nodes.slot[beams] = np.arange(len(beams))
    column[toks] = np.arange(len(toks))
    parent_slot = nodes.slot[nodes.parent[beams]]
    token_col = column[nodes.token[beams]]
    hit = np.nonzero((parent_slot >= 0) & (token_col >= 0) & (beams != 0))[0]
    if len(hit):
        i, j = parent_slot[hit], token_col[hit]
        stay_nb[hit] = np.logaddexp(stay_nb[hit], ext[i, j])
        ext[i, j] = NEG_INF
    nodes.slot[beams] = -1
    column[toks] = -1


def _children(nodes: _Nodes, scorer: Scorer, parents: np.ndarray, tokens: np.ndarray, frame: int,
              lm: np.ndarray, nw: np.ndarray) -> np.ndarray:
    """Node ids of parent+token, creating the missing ones (with their LM state)."""
    keys = (parents * nodes.key_base + tokens).tolist()
    get = nodes.children.get
    ids = np.array([get(key, -1) for key in keys], dtype=np.int64)
    new = np.nonzero(ids < 0)[0]
    if len(new):
        nodes.reserve(len(new))
        idx = np.arange(nodes.n, nodes.n + len(new))
        ids[new] = idx
        nodes.children.update(zip([keys[i] for i in new.tolist()], idx.tolist()))
        par, tok = parents[new], tokens[new]
        state, trie, comp = scorer.children(nodes.state[par], nodes.trie[par], tok)
        nodes.parent[idx], nodes.token[idx], nodes.frame[idx] = par, tok, frame
        nodes.state[idx], nodes.trie[idx], nodes.comp[idx] = state, trie, comp
        nodes.future[idx] = nodes.future_key(nodes.state[idx], nodes.trie[idx], tok)
        nodes.lm[idx], nodes.nw[idx] = lm[new], nw[new]
        nodes.n += len(new)
    return ids


def _finish(nodes: _Nodes, scorer: Scorer, beams, pb, pnb, opts: BeamOptions) -> list[Hypothesis]:
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
