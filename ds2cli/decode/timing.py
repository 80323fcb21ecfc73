"""When each token was spoken: the CTC Viterbi alignment of a decoded token sequence against its
emissions, so beam-search transcripts get the same frame-accurate word times as greedy ones."""
from __future__ import annotations

import numpy as np


def token_spans(log_probs: np.ndarray, tokens: list[int], compiled: bool = True) -> list[tuple[int, int]]:
    """(first frame, last frame + 1) of each token on the best CTC path that spells `tokens`.
    log_probs (T, V), blank = 0. Empty list if `tokens` cannot fit in T frames. The compiled
    Viterbi (numba, where installed) and the numpy one give the same spans."""
    n_frames = len(log_probs)
    if not tokens or n_frames == 0:
        return []
    labels = np.zeros(2 * len(tokens) + 1, dtype=np.int64)  # blank, t1, blank, t2, ..., blank
    labels[1::2] = tokens
    n_states = len(labels)
    # a skip from s-2 to s is allowed into a token that differs from the token before it
    skip = np.zeros(n_states, dtype=bool)
    skip[3::2] = labels[3::2] != labels[1:-2:2]
    if compiled and _viterbi is not None:
        path = _viterbi(np.ascontiguousarray(log_probs), labels, skip)
        return [] if path is None else _spans(path, len(tokens))
    score = np.full(n_states, -np.inf)
    score[:2] = log_probs[0, labels[:2]]
    back = np.zeros((n_frames, n_states), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, n_frames):
        prev1 = np.concatenate([[-np.inf], score[:-1]])
        prev2 = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        choice = np.argmax(np.stack([score, prev1, prev2]), axis=0)
        score = np.choose(choice, [score, prev1, prev2]) + log_probs[t, labels]
        back[t] = choice
    state = n_states - 1 if n_states == 1 or score[-1] >= score[-2] else n_states - 2
    if not np.isfinite(score[state]):
        return []
    path = np.empty(n_frames, dtype=np.int64)
    for t in range(n_frames - 1, -1, -1):
        path[t] = state
        state -= back[t, state]
    return _spans(path, len(tokens))


def _spans(path: np.ndarray, n_tokens: int) -> list[tuple[int, int]]:
    """Each token's (first, last + 1) frame on a path of CTC states (token i = state 2i + 1)."""
    spans = []
    for i in range(n_tokens):
        frames = np.nonzero(path == 2 * i + 1)[0]
        spans.append((int(frames[0]), int(frames[-1]) + 1))
    return spans


try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; the numpy Viterbi still works
    _viterbi = None
else:
    @njit(cache=True, nogil=True)
    def _viterbi(log_probs, labels, skip):
        """token_spans' numpy recursion one state at a time: the same choices (ties to staying,
        then to s-1) and the same float64 sums. The best state path (T,), or None."""
        n_frames, n_states = log_probs.shape[0], labels.shape[0]
        neg_inf = -np.inf
        score = np.full(n_states, neg_inf)
        new = np.empty(n_states)
        score[0] = log_probs[0, labels[0]]
        if n_states > 1:
            score[1] = log_probs[0, labels[1]]
        back = np.zeros((n_frames, n_states), np.int8)
        for t in range(1, n_frames):
            for s in range(n_states):
                best, choice = score[s], 0
                if s >= 1 and score[s - 1] > best:
                    best, choice = score[s - 1], 1
                if s >= 2 and skip[s] and score[s - 2] > best:
                    best, choice = score[s - 2], 2
                new[s] = best + log_probs[t, labels[s]]
                back[t, s] = choice
            score, new = new, score
        state = n_states - 1 if n_states == 1 or score[n_states - 1] >= score[n_states - 2] else n_states - 2
        if not np.isfinite(score[state]):
            return None
        path = np.empty(n_frames, np.int64)
        for t in range(n_frames - 1, -1, -1):
            path[t] = state
            state -= back[t, state]
        return path
