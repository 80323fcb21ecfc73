"""The search itself on hand-made emissions: DS2 character pruning, exact CTC prefix
probabilities, LM fusion with real KenLM models (built by lmplz), unknown-word cost, word bonus,
character-level (Mandarin) and sentencepiece LMs, greedy decoding and token timing."""
import itertools
import math

import numpy as np
import pytest

from ds2cli.decode.beam import BeamSearch, GreedySearch, beam_search, greedy_search, prune_log_probs
from ds2cli.decode.config import DecodeConfig, LMConfig
from ds2cli.decode.lm import load_lm
from ds2cli.decode.lm_build import build_lm
from ds2cli.decode.lm_scorer import make_scorer
from ds2cli.decode.timing import token_spans
from ds2cli.text import BpeTokenizer, CharTokenizer

EN = CharTokenizer.english()
CORPUS = ["the cat sat on the mat", "a dog sat on the log", "the cat ran", "the dog ran on the mat"] * 3


def normalised(x: np.ndarray) -> np.ndarray:
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def frame(tok, probs: dict) -> np.ndarray:
    """One frame of log-probs: the given units' probabilities, the rest spread evenly."""
    p = np.full(len(tok), 0.0)
    for unit, q in probs.items():
        p[0 if unit == "" else tok.vocab.index(unit)] = q
    rest = len(tok) - len(probs)
    p[p == 0] = max(1e-12, (1 - sum(probs.values())) / rest) if rest else 0
    return np.log(p / p.sum())


def spell(tok, text: str, confusions: dict | None = None) -> np.ndarray:
    """Emissions spelling `text` one unit per frame with blanks between; confusions maps a
    position in the text to a dict of alternatives for that frame."""
    units = list(text) if isinstance(text, str) else text
    frames = [frame(tok, {"": 0.98})]
    for i, u in enumerate(units):
        frames.append(frame(tok, (confusions or {}).get(i, {u: 0.97})))
        frames.append(frame(tok, {"": 0.98}))
    return np.stack(frames)


@pytest.fixture(scope="module")
def en_lm(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    (d / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    return load_lm(build_lm(d / "corpus.txt", d / "lm", LMConfig(order=3)).binary)


# -- pruning ---------------------------------------------------------------------------------
def test_pruning_keeps_most_probable_until_cutoff_prob():
    lp = np.log(np.array([[0.05, 0.5, 0.3, 0.15]]))
    ids, tops, counts = prune_log_probs(lp, cutoff_prob=0.9, cutoff_top_n=40)
    assert counts[0] == 3  # 0.5 + 0.3 < 0.9 <= 0.5 + 0.3 + 0.15
    assert ids[0, :3].tolist() == [1, 2, 3]
    assert np.allclose(np.exp(tops[0, :3]), [0.5, 0.3, 0.15])
    assert prune_log_probs(lp, 0.79, 40)[2][0] == 2
    assert prune_log_probs(lp, 0.4, 40)[2][0] == 1


def test_pruning_top_n_applies_even_at_cutoff_one():
    lp = np.log(np.array([[0.25, 0.25, 0.2, 0.2, 0.1]]))
    assert prune_log_probs(lp, cutoff_prob=1.0, cutoff_top_n=2)[2][0] == 2
    assert prune_log_probs(lp, cutoff_prob=1.0, cutoff_top_n=40)[2][0] == 5


def test_pruning_both_limits_apply_together():
    lp = np.log(np.array([[0.3, 0.3, 0.2, 0.1, 0.1], [0.985, 0.01, 0.002, 0.002, 0.001]]))
    ids, _, counts = prune_log_probs(lp, cutoff_prob=0.99, cutoff_top_n=3)
    assert counts.tolist() == [3, 2]  # top-n caps frame 0; cutoff stops frame 1 first
    assert ids[1, 0] == 0


def test_beam_search_never_uses_a_pruned_character(en_lm):
    # frame for 'c' in "the cat": c 0.55, k 0.44. The LM strongly prefers "cat", but with a cutoff of
    # 0.5 only 'c' is kept, and with top-n 1 only 'c' too; with 'k' more likely the LM cannot help.
    lp = spell(EN, "the kat", {4: {"k": 0.6, "c": 0.39}})
    scorer = make_scorer(EN, en_lm, "word")
    free = beam_search(lp, scorer, DecodeConfig(beam_size=16, alpha=2.0, beta=0.0, cutoff_prob=1.0))
    assert EN.decode(free[0].tokens) == "the cat"
    for opts in (DecodeConfig(16, 2.0, 0.0, cutoff_prob=0.5), DecodeConfig(16, 2.0, 0.0, cutoff_prob=1.0, cutoff_top_n=1)):
        assert EN.decode(beam_search(lp, scorer, opts)[0].tokens) == "the kat"


# -- exactness -----------------------------------------------------------------------------------
def ctc_log_prob(lp: np.ndarray, labels: list[int]) -> float:
    """log p(labels | x) by the CTC forward algorithm (the reference to check the search against)."""
    ext = [0]
    for label in labels:
        ext += [label, 0]
    alpha = np.full(len(ext), -np.inf)
    alpha[0] = lp[0, 0]
    if len(ext) > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, len(lp)):
        new = np.full(len(ext), -np.inf)
        for s in range(len(ext)):
            v = alpha[s]
            if s >= 1:
                v = np.logaddexp(v, alpha[s - 1])
            if s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2]:
                v = np.logaddexp(v, alpha[s - 2])
            new[s] = v + lp[t, ext[s]]
        alpha = new
    return float(np.logaddexp(alpha[-1], alpha[-2]) if len(ext) > 1 else alpha[-1])


def test_prefix_probabilities_are_exact_and_best_prefix_found():
    """Against brute force over every label sequence. Sequences that spell the same text (extra
    leading or doubled spaces) are one prefix for the search, so their probabilities add up."""
    tok = CharTokenizer(list(" ab"), "en")
    rng = np.random.default_rng(0)
    scorer = make_scorer(tok, None)

    for _ in range(8):
        lp = normalised(rng.normal(size=(6, 4)) * 2)
        hyps = beam_search(lp, scorer, DecodeConfig(beam_size=300, alpha=0, beta=0, cutoff_prob=1.0, nbest=5,
                                                       beam_threshold=float("inf")))  # exhaustive
        classes: dict[str, float] = {}
        for n in range(7):
            for seq in itertools.product([1, 2, 3], repeat=n):
                key = _canonical(tok.decode(seq))
                classes[key] = np.logaddexp(classes.get(key, -np.inf), ctc_log_prob(lp, list(seq)))
        best = max(classes, key=classes.get)
        assert tok.decode(hyps[0].tokens) == best
        for h in hyps:
            assert h.ctc_score == pytest.approx(classes[tok.decode(h.tokens)], abs=1e-9)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def _canonical(text: str) -> str:
    """No leading spaces, no runs of spaces (a trailing space stays)."""
    import re

    return re.sub(" +", " ", text).lstrip(" ")


# -- LM fusion --------------------------------------------------------------------------------
def test_lm_score_is_the_kenlm_sentence_score(en_lm):
    text = "the dog sat on the mat"
    hyp = beam_search(spell(EN, text), make_scorer(EN, en_lm, "word"), DecodeConfig(16, 0.5, 1.0))[0]
    assert EN.decode(hyp.tokens) == text
    assert hyp.lm_score == pytest.approx(en_lm.model.score(text, bos=True, eos=True) * math.log(10), abs=1e-4)
    assert hyp.words == 6
    assert hyp.score == pytest.approx(hyp.ctc_score + 0.5 * hyp.lm_score + 1.0 * 6, abs=1e-6)


def test_lm_corrects_an_acoustically_likelier_misspelling(en_lm):
    lp = spell(EN, "the cat sat", {4: {"k": 0.6, "c": 0.39}})
    scorer = make_scorer(EN, en_lm, "word")
    assert EN.decode(beam_search(lp, scorer, DecodeConfig(16, 0.0, 0.0))[0].tokens) == "the kat sat"
    assert EN.decode(beam_search(lp, scorer, DecodeConfig(16, 1.0, 0.0))[0].tokens) == "the cat sat"


def test_unknown_word_costs_unk_probability_plus_offset(en_lm):
    lp = spell(EN, "the kat sat", {4: {"k": 0.9, "c": 0.09}})
    by_offset = {}
    for offset in (0.0, -10.0):
        hyp = beam_search(lp, make_scorer(EN, en_lm, "word", unk_offset=offset),
                          DecodeConfig(16, 0.0, 0.0, unk_offset=offset))[0]
        assert EN.decode(hyp.tokens) == "the kat sat"
        by_offset[offset] = hyp.lm_score
    unk = en_lm.model.score("the kat sat", bos=True, eos=True) * math.log(10)  # kenlm maps kat to <unk>
    assert by_offset[0.0] == pytest.approx(unk, abs=1e-4)
    assert by_offset[-10.0] == pytest.approx(unk - 10.0, abs=1e-4)  # charged once, not per letter


def test_unfinished_prefix_of_a_known_word_is_unknown_when_it_ends(en_lm):
    lp = spell(EN, "th cat")  # "th" is a prefix of "the" but not a word
    hyp = beam_search(lp, make_scorer(EN, en_lm, "word", -10.0), DecodeConfig(16, 0.0, 0.0, unk_offset=-10.0))[0]
    assert EN.decode(hyp.tokens) == "th cat"
    assert hyp.lm_score == pytest.approx(en_lm.model.score("th cat", bos=True, eos=True) * math.log(10) - 10, abs=1e-4)


def test_beta_trades_words_against_acoustics():
    units = [{"": 0.98}, {"a": 0.97}, {" ": 0.45, "": 0.54}, {"b": 0.97}, {"": 0.98}]
    lp = np.stack([frame(EN, u) for u in units])  # an uncertain space between a and b
    scorer = make_scorer(EN, None)
    few = beam_search(lp, scorer, DecodeConfig(8, 0.0, -2.0))[0]
    many = beam_search(lp, scorer, DecodeConfig(8, 0.0, 2.0))[0]
    assert EN.decode(few.tokens) == "ab" and few.words == 1
    assert EN.decode(many.tokens) == "a b" and many.words == 2


def test_nbest_is_sorted_and_distinct(en_lm):
    lp = spell(EN, "the cat sat", {4: {"k": 0.5, "c": 0.45}, 8: {"s": 0.5, "m": 0.45}})
    hyps = beam_search(lp, make_scorer(EN, en_lm, "word"), DecodeConfig(32, 0.5, 1.0, nbest=4))
    assert len(hyps) == 4
    assert len({tuple(h.tokens) for h in hyps}) == 4
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_mandarin_character_lm(tmp_path):
    tok = CharTokenizer(list("我你们好很"), "zh")
    (tmp_path / "zh.txt").write_text("我们很好\n我们好\n我很好\n" * 3, encoding="utf-8")
    built = build_lm(tmp_path / "zh.txt", tmp_path / "lm", LMConfig(order=3))
    assert built.level == "char" and built.language == "zh"
    lm = load_lm(built.binary)
    assert lm.vocab and all(len(w) == 1 for w in lm.vocab)
    lp = spell(tok, "你们很好", {0: {"你": 0.55, "我": 0.44}})
    scorer = make_scorer(tok, lm, "char")
    assert tok.decode(beam_search(lp, scorer, DecodeConfig(16, 0.0, 0.0))[0].tokens) == "你们很好"
    best = beam_search(lp, scorer, DecodeConfig(16, 1.0, 0.0))[0]
    assert tok.decode(best.tokens) == "我们很好"
    assert best.lm_score == pytest.approx(lm.model.score("我 们 很 好", bos=True, eos=True) * math.log(10), abs=1e-4)
    assert best.words == 4  # beta counts Mandarin characters


def test_sentencepiece_units_with_word_lm(en_lm):
    tok = BpeTokenizer.train(CORPUS * 4, vocab_size=30)
    text = "the dog ran on the mat"
    ids = tok.encode(text)
    lp = spell(tok, [tok.vocab[i] for i in ids])
    hyp = beam_search(lp, make_scorer(tok, en_lm, "word"), DecodeConfig(16, 0.5, 1.0))[0]
    assert tok.decode(hyp.tokens) == text
    assert hyp.words == 6
    assert hyp.lm_score == pytest.approx(en_lm.model.score(text, bos=True, eos=True) * math.log(10), abs=1e-4)


# -- greedy and timing ----------------------------------------------------------------------------
def test_greedy_merges_repeats_and_drops_blanks():
    path = [0, 2, 2, 0, 2, 3, 3, 0, 1, 1]
    lp = np.log(np.full((len(path), 4), 0.01))
    lp[np.arange(len(path)), path] = np.log(0.97)
    hyp = greedy_search(lp)
    assert hyp.tokens == [2, 2, 3, 1] and hyp.frames == [1, 4, 5, 8]
    assert hyp.score == pytest.approx(len(path) * np.log(0.97))


def test_token_spans_follow_the_best_alignment():
    lp = spell(EN, "abba")
    spans = token_spans(lp, EN.encode("abba"))
    assert spans == [(1, 2), (3, 4), (5, 6), (7, 8)]
    assert token_spans(lp[:3], EN.encode("abba")) == []  # cannot fit


def test_compiled_token_spans_equal_the_numpy_ones():
    """Random emissions, repeated letters, exact ties (a uniform frame) and a transcript that
    cannot fit: the compiled Viterbi chooses what the numpy one chooses."""
    rng = np.random.default_rng(0)
    uniform = np.full((12, len(EN)), -np.log(len(EN)), dtype=np.float32)
    cases = [(uniform, EN.encode("aab")), (uniform, EN.encode("abcdefghijklm"))]
    for n in range(30):
        lp = normalised(rng.normal(0, 3, (int(rng.integers(1, 60)), len(EN)))).astype(np.float32)
        text = "".join(rng.choice(list("aab c"), int(rng.integers(1, 20))))
        cases.append((lp, EN.encode(text)))
    found = 0
    for lp, tokens in cases:
        spans = token_spans(lp, tokens)
        assert spans == token_spans(lp, tokens, compiled=False)
        found += bool(spans)
    assert 0 < found < len(cases)  # some fit, some do not


def test_dropping_lm_caches_between_utterances_changes_nothing(en_lm):
    scorer = make_scorer(EN, en_lm, "word")
    lp = spell(EN, "the cat sat", {4: {"k": 0.6, "c": 0.39}})
    first = beam_search(lp, scorer, DecodeConfig(16, 1.0, 0.5, nbest=3))
    scorer.trim(limit=0)  # as a long decoding job does when the caches grow large
    assert en_lm.n_states == 1
    again = beam_search(lp, scorer, DecodeConfig(16, 1.0, 0.5, nbest=3))
    assert [(h.tokens, round(h.score, 9)) for h in first] == [(h.tokens, round(h.score, 9)) for h in again]


def test_recombination_frees_beam_slots_for_a_better_hypothesis(en_lm):
    """An unknown first word spelled four equally likely ways fills a small beam with twins that
    share every future score; then "sat" (acoustically ahead) crowds out "cat", which the LM
    prefers once "ran" follows. Recombining the twins keeps room for "cat"."""
    emissions = spell(EN, "xq sat ran", {0: {"x": 0.4995, "z": 0.4995}, 1: {"q": 0.4995, "w": 0.4995},
                                         3: {"s": 0.55, "c": 0.44}})
    scorer = make_scorer(EN, en_lm, "word", unk_offset=-1.0)

    def best(beam_size, recombine):
        opts = DecodeConfig(beam_size=beam_size, alpha=1.0, beta=0.0, cutoff_prob=1.0, recombine=recombine)
        return beam_search(emissions, scorer, opts)[0]

    wide = best(16, False)
    assert EN.decode(wide.tokens).split()[1:] == ["cat", "ran"]
    narrow = best(2, False)
    assert EN.decode(narrow.tokens).split()[1:] == ["sat", "ran"] and narrow.score < wide.score - 1
    recombined = best(2, True)
    assert EN.decode(recombined.tokens).split()[1:] == ["cat", "ran"]
    assert recombined.score == pytest.approx(wide.score, abs=0.01)


def test_beam_threshold_drops_candidates_far_below_the_best():
    tok = CharTokenizer(list(" ab"), "en")
    emissions = np.stack([frame(tok, {"a": 0.6, "b": 0.4}), frame(tok, {"": 0.999})])
    scorer = make_scorer(tok, None)

    def texts(threshold):
        opts = DecodeConfig(beam_size=8, alpha=0, beta=0, cutoff_prob=1.0, nbest=8, beam_threshold=threshold)
        return [tok.decode(h.tokens) for h in beam_search(emissions, scorer, opts)]

    assert texts(float("inf"))[:2] == ["a", "b"]  # log(0.6 / 0.4) = 0.41 apart
    assert texts(1.0)[:2] == ["a", "b"]
    assert texts(0.3) == ["a"]


def test_lookup_tables_equal_the_general_word_scorer(en_lm):
    """Character alphabets take precomputed tables (trie moves, which steps leave the vocabulary);
    multi-character units (sentencepiece) take the general path. Both give the same LM deltas,
    word counts and children on every trie node, token and two LM contexts."""
    fast = make_scorer(EN, en_lm, "word")
    general = make_scorer(EN, en_lm, "word")
    general.table = general.leaves_vocab = None
    after_the = en_lm.score(fast.start_state, "the")[1]
    trie = np.tile(np.arange(-1, len(fast.words)), 2)
    state = np.repeat([fast.start_state, after_the], len(trie) // 2)
    tokens = np.arange(1, len(EN.vocab))
    comp_fast = np.where(trie == 0, 0.0, np.nan)
    comp_general = comp_fast.copy()
    dlm_f, dnw_f = fast.ext_delta(state, trie, comp_fast, tokens)
    dlm_g, dnw_g = general.ext_delta(state, trie, comp_general, tokens)
    assert np.isfinite(dlm_f).all() and (dlm_f < 0).any() and dnw_f.any()
    np.testing.assert_allclose(dlm_f, dlm_g)
    np.testing.assert_array_equal(dnw_f, dnw_g)
    np.testing.assert_allclose(comp_fast, comp_general)  # the completions looked up on the way
    pairs_state, pairs_trie = np.repeat(state, len(tokens)), np.repeat(trie, len(tokens))
    pairs_token = np.tile(tokens, len(trie))
    for a, b in zip(fast.children(pairs_state, pairs_trie, pairs_token)[:2],
                    general.children(pairs_state, pairs_trie, pairs_token)[:2]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# -- incremental search (streams) ------------------------------------------------------------------
def noisy(tok, text: str, seed: int, scale: float = 1.5) -> np.ndarray:
    """`text` spelled, blurred by random noise so that many prefixes stay alive."""
    rng = np.random.default_rng(seed)
    lp = spell(tok, text)
    return normalised(lp + rng.normal(size=lp.shape) * scale)


def chunkings(n_frames: int, rng) -> list[list[int]]:
    """Chunk sizes covering n_frames: one frame at a time, random sizes (empty chunks included)."""
    out = [[1] * n_frames]
    for _ in range(3):
        sizes, left = [], n_frames
        while left:
            size = min(left, int(rng.integers(0, 9)))
            sizes.append(size)
            left -= size
        out.append(sizes)
    return out


def _summary(hyps) -> list:
    return [(h.tokens, h.frames, h.words) for h in hyps]


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("with_lm", [False, True])
def test_chunked_search_equals_one_shot(en_lm, with_lm, compiled):
    rng = np.random.default_rng(1)
    scorer = make_scorer(EN, en_lm if with_lm else None, "word")
    opts = DecodeConfig(beam_size=12, alpha=0.8, beta=1.0, nbest=4)
    for seed, text in enumerate(["the cat sat on the mat", "a dog ran on the log"]):
        lp = noisy(EN, text, seed)
        whole = beam_search(lp, scorer, opts)
        assert len(whole) >= 2
        for sizes in chunkings(len(lp), rng):
            search, at = BeamSearch(scorer, opts, compiled=compiled), 0
            for size in sizes:
                search.advance(lp[at: at + size])
                at += size
                assert search.frames == at
                partial = search.best()
                assert all(0 <= f < at for f in partial.frames) and partial.frames == sorted(partial.frames)
                assert np.isfinite(partial.score)
            assert search.nodes.n > 50  # many prefixes were tried
            hyps = search.finish()
            assert _summary(hyps) == _summary(whole)
            for a, b in zip(hyps, whole):
                assert a.score == pytest.approx(b.score, abs=1e-9)
                assert a.ctc_score == pytest.approx(b.ctc_score, abs=1e-9)
                assert a.lm_score == pytest.approx(b.lm_score, abs=1e-9)


def test_partial_result_is_a_prefix_the_search_keeps(en_lm):
    """best() after each chunk is a prefix of the spoken text while it is spelled clearly, and
    at the end it is the text (before </s> is scored)."""
    text = "the dog sat on the mat"
    lp = spell(EN, text)
    search = BeamSearch(make_scorer(EN, en_lm, "word"), DecodeConfig(16, 0.5, 1.0))
    for at in range(0, len(lp), 5):
        search.advance(lp[at: at + 5])
        assert text.startswith(EN.decode(search.best().tokens))
    assert EN.decode(search.best().tokens) == text
    partial, final = search.best(), search.finish()[0]
    assert EN.decode(final.tokens) == text and final.ctc_score == partial.ctc_score
    assert (partial.words, final.words) == (5, 6)  # "mat" and </s> are scored by finish() only
    assert final.lm_score < partial.lm_score


def test_empty_stream_and_empty_chunks(en_lm):
    search = BeamSearch(make_scorer(EN, en_lm, "word"), DecodeConfig(8))
    assert search.best().tokens == [] and search.frames == 0
    assert search.finish()[0].tokens == []
    search.advance(np.zeros((0, len(EN))))
    assert search.finish()[0].tokens == beam_search(np.zeros((0, len(EN))), search.scorer, DecodeConfig(8))[0].tokens
    with pytest.raises(ValueError, match="tokens per frame"):
        search.advance(np.zeros((2, len(EN) + 1)))


def test_chunked_greedy_equals_one_shot():
    rng = np.random.default_rng(2)
    lp = noisy(EN, "the cat sat", 0, scale=3.0)
    whole = greedy_search(lp)
    for sizes in chunkings(len(lp), rng):
        search, at = GreedySearch(), 0
        for size in sizes:
            search.advance(lp[at: at + size])
            at += size
        hyp = search.finish()[0]
        assert (hyp.tokens, hyp.frames) == (whole.tokens, whole.frames)
        assert hyp.score == pytest.approx(whole.score, abs=1e-9)


@pytest.mark.parametrize("with_lm", [False, True])
def test_compiled_core_equals_the_numpy_loop(en_lm, with_lm):
    """The compiled core (fast.py) and beam.py's numpy loop keep the same beams: equal n-best
    tokens and frames, scores to 1e-9, on blurred emissions at several widths, with character
    pruning and without, with a growing node store (long input) and LM lookups mid-search."""
    from ds2cli.decode import fast

    if not fast.available():
        pytest.skip("numba is not installed")
    scorer = make_scorer(EN, en_lm if with_lm else None, "word", unk_offset=-3.0)
    assert fast.supports(scorer)
    long = np.concatenate([noisy(EN, "the dog sat on the mat and the cat ran on the log", s, 2.0) for s in range(4)])
    most = 0
    for width, cutoff in [(1, 0.99), (5, 0.99), (40, 0.99), (40, 1.0), (200, 0.999)]:
        opts = DecodeConfig(beam_size=width, alpha=0.7, beta=0.5, cutoff_prob=cutoff, nbest=5, unk_offset=-3.0)
        for lp in (long, noisy(EN, "a cat sat", 7, 3.0)):
            scorer.trim(limit=0)  # fresh LM caches: the compiled core meets missing word scores
            one, two = BeamSearch(scorer, opts, compiled=True), BeamSearch(scorer, opts, compiled=False)
            one.advance(lp)
            two.advance(lp)
            a, b = one.finish(), two.finish()
            assert _summary(a) == _summary(b)
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-9, rtol=0)
            assert one.nodes.n == two.nodes.n
            most = max(most, one.nodes.n)
    assert most > 4096  # the node columns grew on the way


def test_compiled_pruning_equals_the_numpy_pruning():
    """fast.prune picks each frame's candidates as beam.prune_log_probs does: the same tokens in
    the same order (ties to the lower id) on peaky, flat, tied and impossible (-inf) frames
    (numpy's argpartition picks any of the tokens that tie at the top-n boundary: not compared)."""
    from ds2cli.decode import fast
    from ds2cli.decode.beam import _tokens_per_frame, prune_log_probs

    if not fast.available():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(3)
    lp = np.concatenate([normalised(rng.normal(0, scale, (40, len(EN)))) for scale in (0.3, 3.0, 12.0)])
    lp[5, :] = -np.log(len(EN))  # every token ties
    lp[6, 3:9] = -np.inf
    lp[7, [0, 4, 9]] = np.log(1 / 3)
    lp[7, [i for i in range(len(EN)) if i not in (0, 4, 9)]] = -np.inf
    for cutoff, top in [(0.99, 40), (0.9, 5), (0.5, 40), (1.0, 40), (1.0, 3)]:
        want = _tokens_per_frame(*prune_log_probs(lp, cutoff, top))
        got = fast.prune(lp, cutoff, top)
        for t in range(len(lp)):
            if t == 5 and top < len(EN):
                continue
            n = want[2][t]
            assert got[2][t] == n
            assert got[0][t, :n].tolist() == want[0][t, :n].tolist()
            assert got[1][t, :n].tolist() == want[1][t, :n].tolist()
            assert got[3][t] == want[3][t]


def test_compiled_partial_results_equal_the_numpy_loop(en_lm):
    """best() after every chunk (what a stream reports as its partial) is the same prefix, frames
    and scores with the compiled core as with the numpy loop."""
    from ds2cli.decode import fast

    if not fast.available():
        pytest.skip("numba is not installed")
    scorer = make_scorer(EN, en_lm, "word")
    opts = DecodeConfig(beam_size=16, alpha=0.7, beta=0.5)
    lp = np.concatenate([noisy(EN, "the dog sat on the mat", s, 2.0) for s in range(2)])
    one, two = BeamSearch(scorer, opts, compiled=True), BeamSearch(scorer, opts, compiled=False)
    assert one.best() == two.best()  # nothing yet
    changed = set()
    for at in range(0, len(lp), 5):
        one.advance(lp[at: at + 5])
        two.advance(lp[at: at + 5])
        a, b = one.best(), two.best()
        assert (a.tokens, a.frames, a.words) == (b.tokens, b.frames, b.words)
        assert (a.score, a.ctc_score, a.lm_score) == pytest.approx((b.score, b.ctc_score, b.lm_score), abs=1e-9)
        changed.add(tuple(a.tokens))
    assert len(changed) > 10  # the partial grew along the way


def test_sentencepiece_and_char_lm_searches_take_the_numpy_loop(en_lm):
    tok = BpeTokenizer.train(CORPUS * 4, vocab_size=30)
    assert not BeamSearch(make_scorer(tok, en_lm, "word"), DecodeConfig(8)).compiled
    assert BeamSearch(make_scorer(EN, en_lm, "word"), DecodeConfig(8)).compiled or not _has_numba()
    assert not BeamSearch(make_scorer(EN, en_lm, "word"), DecodeConfig(8), compiled=False).compiled


def _has_numba() -> bool:
    from ds2cli.decode import fast

    return fast.available()
