"""When each token was spoken: the CTC Viterbi alignment of a decoded token sequence against its
emissions, so beam-search transcripts get the same frame-accurate word times as greedy ones."""
from __future__ import annotations

import numpy as np


def token_spans(log_probs: np.ndarray, tokens: list[int]) -> list[tuple[int, int]]:
    """(first frame, last frame + 1) of each token on the best CTC path that spells `tokens`.
    log_probs (T, V), blank = 0. Empty list if `tokens` cannot fit in T frames."""
    n_frames = len(log_probs)
    if not tokens or n_frames == 0:
        return []
    labels = np.zeros(2 * len(tokens) + 1, dtype=np.int64)  # blank, t1, blank, t2, ..., blank
    labels[1::2] = tokens
    n_states = len(labels)
    # a skip from s-2 to s is allowed into a token that differs from the token before it
    skip = np.zeros(n_states, dtype=bool)
    skip[3::2] = labels[3::2] != labels[1:-2:2]
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
    spans = []
    for i in range(len(tokens)):
        frames = np.nonzero(path == 2 * i + 1)[0]
        spans.append((int(frames[0]), int(frames[-1]) + 1))
    return spans
