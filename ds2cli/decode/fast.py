"""The compiled core of the prefix beam search (numba): beam.py's frame step written one prefix
and candidate at a time, so a frame costs what its live prefixes and candidates cost instead of
some hundred small array operations.

It runs word-level scoring over character alphabets (WordScorer with its lookup tables: English
characters, with or without a KenLM model); other scorers take beam.py's numpy loop, which gives
the same hypotheses. KenLM stays in Python: the core keeps the word scores it has seen in numba
dictionaries beside the scorer's own cache, and when a frame needs a score it does not have, it
stops before changing anything, hands the missing (LM state, trie node) pairs back, and the
frame is run again once WordScorer.complete has filled them in. It also stops when the node
columns are nearly full, to be grown. Without numba, `available()` is False and everything
takes the numpy loop."""
from __future__ import annotations

import math

import numpy as np

try:
    import numba
    from numba import njit, types
except ImportError:  # pragma: no cover - numba is a dependency; the numpy loop still works
    numba = None

DONE, MISSING, FULL = 0, 1, 2  # why _run returned
LOG2 = math.log(2.0)


def available() -> bool:
    return numba is not None


def supports(scorer) -> bool:
    """Whether the compiled core runs this scorer (word scoring with lookup tables; the
    per-character unknown-word cost runs in the numpy loop only)."""
    from ds2cli.decode.lm_scorer import WordScorer

    return available() and isinstance(scorer, WordScorer) and scorer.table is not None and not scorer.unk_char and (
        not scorer.has_lm or scorer.leaves_vocab is not None)


def word_cache(scorer):
    """The scorer's word scores as numba dictionaries, (state * trie_span + trie + 1) -> LM
    log-probability of finishing the word / the next LM state; new after Scorer.trim()."""
    held = getattr(scorer, "_compiled_cache", None)
    if held is None or held[0] != scorer.generation:
        held = scorer._compiled_cache = (scorer.generation, *_new_caches())
    return held[1], held[2]


def fill(scorer, missing: np.ndarray) -> None:
    """Look up the (state, trie) pairs a frame needed, missing (M, 2), with WordScorer.complete."""
    lp, nxt = word_cache(scorer)
    found = [scorer.complete(state, trie) for state, trie in missing.tolist()]
    keys = missing[:, 0] * scorer.trie_span + missing[:, 1] + 1
    _store(lp, nxt, keys, np.array([f[0] for f in found], dtype=np.float64),
           np.array([f[1] for f in found], dtype=np.int64))


# The dictionaries are made and filled in compiled (and disk-cached) code: numba compiles typed
# dictionaries' Python-side methods afresh in every process, close to a second of start-up.
if numba is not None:
    @njit(cache=True)
    def _new_caches():
        return (numba.typed.Dict.empty(key_type=types.int64, value_type=types.float64),
                numba.typed.Dict.empty(key_type=types.int64, value_type=types.int64))

    @njit(cache=True)
    def _store(lp, nxt, keys, scores, afters):
        for i in range(keys.shape[0]):
            lp[keys[i]] = scores[i]
            nxt[keys[i]] = afters[i]


if numba is not None:
    @njit(cache=True, nogil=True)
    def _lae(x, y):
        """np.logaddexp, the same arithmetic."""
        if x == y:
            return x + LOG2
        tmp = x - y
        if tmp > 0:
            return x + math.log1p(math.exp(-tmp))
        if tmp <= 0:
            return y + math.log1p(math.exp(tmp))
        return tmp

    @njit(cache=True, nogil=True)
    def _prune(lp, probs, cutoff_prob, top_n):
        """beam.prune_log_probs followed by beam._tokens_per_frame, frame by frame: lp (T, V)
        log-probs and probs = np.exp(lp) -> tokens (T, K), their log-probs (T, K), counts (T,),
        blank log-probs (T,). The same tokens in the same order (best first, ties to the lower
        id) wherever no two tokens tie at the top-n boundary."""
        n_frames, vocab = lp.shape
        k = min(top_n, vocab)
        toks = np.zeros((n_frames, k), np.int64)
        tok_lp = np.full((n_frames, k), -np.inf)
        n_toks = np.zeros(n_frames, np.int64)
        blank_lp = np.full(n_frames, -np.inf)
        order = np.empty(vocab, np.int64)
        used = np.zeros(vocab, np.bool_)
        for t in range(n_frames):
            count = k
            if cutoff_prob < 1.0 and not np.isnan(lp[t]).any():
                # usually one or two tokens reach the cutoff: pick them best first (ties to the
                # lower id, as the stable sort orders them) instead of sorting the frame
                cum = 0.0
                for q in range(k):
                    pick = -1
                    for v in range(vocab):
                        if not used[v] and (pick < 0 or lp[t, v] > lp[t, pick]):
                            pick = v
                    order[q], used[pick] = pick, True
                    cum += probs[t, pick]
                    if cum >= cutoff_prob:
                        count = q + 1
                        break
                for q in range(count):
                    used[order[q]] = False
            else:
                order = np.argsort(-lp[t], kind="mergesort")
                if cutoff_prob < 1.0:
                    cum = 0.0
                    for q in range(k):
                        cum += probs[t, order[q]]
                        if cum >= cutoff_prob:
                            count = q + 1
                            break
            c = 0
            for q in range(count):
                tok = order[q]
                if tok == 0:
                    blank_lp[t] = lp[t, 0]
                else:
                    toks[t, c] = tok
                    tok_lp[t, c] = lp[t, tok]
                    c += 1
            n_toks[t] = c
        return toks, tok_lp, n_toks, blank_lp

    @njit(cache=True, nogil=True)
    def _run(t, t_end, frame_base, toks, tok_lp, n_toks, blank_lp,
             parent, token, frame, state, trie, comp, lmc, nwc, bonusc, future, slot, n_nodes,
             beams, pb, pnb, n_beams,
             boundary, leaves, table, has_lm, sep, key_base, trie_span,
             alpha, beta, unk_offset, width, threshold, recombine,
             cache_lp, cache_next, missing, col, frame_lp):
        """Frames t .. t_end - 1 of beam.py's loop. Node columns (capacity,), slot (capacity + 1,),
        beams/pb/pnb (width,) hold n_beams live prefixes; col/frame_lp (V + 1,) are -1/-inf.
        Returns (frame reached, n_nodes, n_beams, DONE | MISSING (missing[:M] filled) | FULL, M)."""
        neg_inf = -np.inf
        k_max = toks.shape[1]
        size = width * (k_max + 1)
        stay_b = np.empty(width)
        stay_nb = np.empty(width)
        last = np.empty(width, np.int64)
        ext = np.empty(size)
        dlm = np.empty(size)
        dnw = np.empty(size)
        ext_bonus = np.empty(size)
        scores = np.empty(size + width)
        hit_row = np.empty(width, np.int64)
        hit_idx = np.empty(width, np.int64)
        keep = np.empty(width, np.int64)
        new_beams = np.empty(width, np.int64)
        new_pb = np.empty(width)
        new_pnb = np.empty(width)
        kept_scores = np.empty(width)
        oov_row = leaves.shape[0] - 1
        capacity = parent.shape[0]
        while t < t_end:
            n = n_toks[t]
            b = n_beams
            if n == 0:  # only the blank survives pruning
                for i in range(b):
                    pb[i] = _lae(pb[i], pnb[i]) + blank_lp[t]
                    pnb[i] = neg_inf
                t += 1
                continue
            if n_nodes + width > capacity:
                return t, n_nodes, n_beams, FULL, 0
            any_boundary = False
            for j in range(n):
                if boundary[toks[t, j]]:
                    any_boundary = True
            if has_lm and any_boundary:  # every word score this frame needs, before changing anything
                m = 0
                for i in range(b):
                    node = beams[i]
                    if trie[node] != 0 and math.isnan(comp[node]):
                        key = state[node] * trie_span + trie[node] + 1
                        if key in cache_lp:
                            comp[node] = cache_lp[key]
                        else:
                            missing[m, 0] = state[node]
                            missing[m, 1] = trie[node]
                            m += 1
                if m:
                    return t, n_nodes, n_beams, MISSING, m
            for j in range(n):
                frame_lp[toks[t, j]] = tok_lp[t, j]
                col[toks[t, j]] = j
            blank = blank_lp[t]
            for i in range(b):
                total = _lae(pb[i], pnb[i])
                lt = token[beams[i]]
                last[i] = lt
                stay_b[i] = total + blank
                stay_nb[i] = pnb[i] + frame_lp[lt]  # the last token repeated
                for j in range(n):  # extending by the last token needs a blank in between
                    ext[i * n + j] = (pb[i] if lt == toks[t, j] else total) + tok_lp[t, j]
            if sep >= 0 and col[sep] >= 0:  # a second space stays in the same prefix
                c = col[sep]
                for i in range(b):
                    if last[i] == sep:
                        stay_nb[i] = _lae(stay_nb[i], ext[i * n + c])
                        ext[i * n + c] = neg_inf
            for i in range(b):  # extensions that lead to a prefix already in the beam merge into it
                slot[beams[i]] = i
            hits = 0
            for i in range(b):
                p = parent[beams[i]]
                if p >= 0 and slot[p] >= 0 and col[last[i]] >= 0:
                    hit_row[hits] = i
                    hit_idx[hits] = slot[p] * n + col[last[i]]
                    hits += 1
            for h in range(hits):
                stay_nb[hit_row[h]] = _lae(stay_nb[hit_row[h]], ext[hit_idx[h]])
            for h in range(hits):
                ext[hit_idx[h]] = neg_inf
            for i in range(b):
                slot[beams[i]] = -1
            m_all = b + b * n
            best = neg_inf
            for i in range(b):
                node = beams[i]
                bon = bonusc[node]
                tr = trie[node]
                row = tr if tr >= 0 else oov_row
                for j in range(n):
                    tk = toks[t, j]
                    ends = tr != 0 and boundary[tk]
                    d = comp[node] if (ends and has_lm) else 0.0
                    if has_lm and leaves[row, tk]:
                        d += unk_offset
                    w = 1.0 if ends else 0.0
                    e = i * n + j
                    dlm[e], dnw[e] = d, w
                    ext_bonus[e] = alpha * d + beta * w + bon
                    s = ext[e] + ext_bonus[e]
                    scores[b + e] = s
                    best = max(best, s)
                s = _lae(stay_b[i], stay_nb[i]) + bon
                scores[i] = s
                best = max(best, s)
            # the best `width` candidates, ties to the lower index, in index order
            if m_all > width:
                cut = -np.partition(-scores[:m_all], width - 1)[width - 1]  # the width-th best
                ties = width
                for e in range(m_all):
                    if scores[e] > cut:
                        ties -= 1
                k = 0
                for e in range(m_all):
                    s = scores[e]
                    if s > cut or (s == cut and ties > 0):
                        if not s > cut:
                            ties -= 1
                        keep[k] = e
                        k += 1
            else:
                k = m_all
                for e in range(m_all):
                    keep[e] = e
            floor = max(best - threshold, neg_inf)
            nb = 0
            for q in range(k):
                e = keep[q]
                s = scores[e]
                if not s > floor:
                    continue
                if e < b:
                    new_beams[nb], new_pb[nb], new_pnb[nb] = beams[e], stay_b[e], stay_nb[e]
                else:
                    x = e - b
                    r = x // n
                    p = beams[r]
                    tk = toks[t, x % n]
                    node = n_nodes
                    n_nodes += 1
                    tr = trie[p]
                    st = state[p]
                    if has_lm and boundary[tk] and tr != 0:
                        st = cache_next[state[p] * trie_span + tr + 1]
                    nt = table[tr if tr >= 0 else oov_row, tk]
                    parent[node], token[node], frame[node] = p, tk, frame_base + t
                    state[node], trie[node] = st, nt
                    comp[node] = 0.0 if (nt == 0 or not has_lm) else np.nan
                    future[node] = (st * trie_span + (nt + 1)) * key_base + tk
                    lmc[node] = lmc[p] + dlm[x]
                    nwc[node] = nwc[p] + dnw[x]
                    bonusc[node] = ext_bonus[x]
                    new_beams[nb], new_pb[nb], new_pnb[nb] = node, neg_inf, ext[x]
                kept_scores[nb] = s
                nb += 1
            if recombine and nb > 1:  # of prefixes with one future only the best stays
                fut = np.empty(nb, np.int64)
                for q in range(nb):
                    fut[q] = future[new_beams[q]]
                order = np.argsort(fut, kind="mergesort")
                alive = np.zeros(nb, np.bool_)
                q = 0
                while q < nb:
                    top = order[q]
                    r = q + 1
                    while r < nb and fut[order[r]] == fut[top]:
                        if kept_scores[order[r]] > kept_scores[top]:
                            top = order[r]
                        r += 1
                    alive[top] = True
                    q = r
                w = 0
                for q in range(nb):
                    if alive[q]:
                        new_beams[w], new_pb[w], new_pnb[w] = new_beams[q], new_pb[q], new_pnb[q]
                        w += 1
                nb = w
            for q in range(nb):
                beams[q], pb[q], pnb[q] = new_beams[q], new_pb[q], new_pnb[q]
            n_beams = nb
            for j in range(n):
                frame_lp[toks[t, j]] = neg_inf
                col[toks[t, j]] = -1
            t += 1
        return t, n_nodes, n_beams, DONE, 0


if numba is not None:
    @njit(cache=True, nogil=True)
    def _best(beams, pb, pnb, bonus, parent, token, frame):
        """BeamSearch.best's choice (np.argmax of logaddexp(pb, pnb) + bonus, first of ties) and
        its path: (position, total, tokens, frames)."""
        top, best, top_total = 0, -np.inf, -np.inf
        for i in range(beams.shape[0]):
            total = _lae(pb[i], pnb[i])
            s = total + bonus[beams[i]]
            if s > best or i == 0:
                top, best, top_total = i, s, total
        node, n = beams[top], 0
        while node != 0:
            n += 1
            node = parent[node]
        tokens, frames = np.empty(n, np.int64), np.empty(n, np.int64)
        node = beams[top]
        while node != 0:
            n -= 1
            tokens[n], frames[n] = token[node], frame[node]
            node = parent[node]
        return top, top_total, tokens, frames


def best(search):
    """(position in the beam, log p_ctc, tokens, frames) of a BeamSearch's best prefix."""
    nodes = search.nodes
    return _best(search.beams, search.pb, search.pnb, nodes.bonus, nodes.parent, nodes.token, nodes.frame)


def prune(log_probs: np.ndarray, cutoff_prob: float, cutoff_top_n: int):
    """The candidates of each frame, as beam._tokens_per_frame(*beam.prune_log_probs(...))
    returns them; log_probs (T, V) float64."""
    log_probs = np.ascontiguousarray(log_probs, dtype=np.float64)
    return _prune(log_probs, np.exp(log_probs), cutoff_prob, cutoff_top_n)


def run_frames(search, toks, tok_lp, n_toks, blank_lp) -> None:
    """Advance a BeamSearch (its compiled state) over the pruned frames of one chunk."""
    scorer, opts, nodes = search.scorer, search.opts, search.nodes
    cache_lp, cache_next = word_cache(scorer)
    has_lm = scorer.has_lm
    leaves = scorer.leaves_vocab if has_lm else np.zeros((1, 1), dtype=bool)
    sep = -1 if scorer.separator is None else scorer.separator
    t, n_frames = 0, len(n_toks)
    while t < n_frames:
        t, nodes.n, search.n_beams, status, m = _run(
            t, n_frames, search.frames, toks, tok_lp, n_toks, blank_lp,
            nodes.parent, nodes.token, nodes.frame, nodes.state, nodes.trie, nodes.comp, nodes.lm, nodes.nw,
            nodes.bonus, nodes.future, nodes.slot, nodes.n,
            search.beam_buf, search.pb_buf, search.pnb_buf, search.n_beams,
            scorer.boundary, leaves, scorer.table, has_lm, sep, nodes.key_base, nodes.trie_span,
            opts.alpha, opts.beta, scorer.unk_offset, opts.beam_size, opts.beam_threshold, search.recombine,
            cache_lp, cache_next, search.missing, search.column, search.frame_lp)
        if status == MISSING:
            fill(scorer, search.missing[:m])
        elif status == FULL:
            nodes.reserve(len(nodes.parent))  # doubles
