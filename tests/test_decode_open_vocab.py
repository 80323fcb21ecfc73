"""Open vocabulary: unknown words charged per character (decode.unk_char_offset) so that the beam
search never glues unknown words into one long non-word, on hand-made emissions and a real KenLM."""
import math

import numpy as np
import pytest

from ds2cli.decode.beam import beam_search
from ds2cli.decode.config import DecodeConfig, LMConfig
from ds2cli.decode.lm import load_lm
from ds2cli.decode.lm_build import build_lm
from ds2cli.decode.lm_scorer import make_scorer
from ds2cli.text import CharTokenizer

EN = CharTokenizer.english()
CORPUS = ["the cat sat on the mat", "a dog sat on the log", "the cat ran", "the dog ran on the mat"] * 3


def frame(probs: dict) -> np.ndarray:
    p = np.full(len(EN), 1e-4)
    for unit, q in probs.items():
        p[0 if unit == "" else EN.vocab.index(unit)] = q
    return np.log(p / p.sum())


def spell(words: list[str], space: float) -> np.ndarray:
    """Clear letters; between words one frame where the space has probability `space` (the rest
    blank): a weakly heard word boundary, as between quickly read words."""
    frames = [frame({"": 0.98})]
    for k, word in enumerate(words):
        if k:
            frames.append(frame({" ": space, "": 1 - space}))
        for ch in word:
            frames += [frame({ch: 0.97}), frame({"": 0.98})]
    return np.stack(frames)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    (d / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    return load_lm(build_lm(d / "corpus.txt", d / "lm", LMConfig(order=3)).binary)


def _best(lp, scorer, alpha=0.8, beta=1.0):
    return beam_search(lp, scorer, DecodeConfig(32, alpha, beta, unk_offset=-10.0))[0]


def test_unknown_words_are_glued_when_charged_per_word_and_kept_apart_per_character(lm):
    words = ["han", "ninw", "shoch", "the", "cat"]
    lp = spell(words, space=0.35)  # each boundary: blank 0.65 vs space 0.35
    glued = EN.decode(_best(lp, make_scorer(EN, lm, "word", -10.0)).tokens)
    assert glued == "hanninwshochthecat"  # one long non-word: the unknown-word cost paid once
    kept = EN.decode(_best(lp, make_scorer(EN, lm, "word", -10.0, unk_char_offset=-1.5)).tokens)
    assert kept == "han ninw shoch the cat"


def test_per_character_cost_does_not_depend_on_how_unknown_speech_is_cut(lm):
    """LM score of 'zork blat the cat' minus that of 'zorkblat the cat' is 0 per character
    (both spell 8 unknown characters), so only the word bonus tells them apart."""
    scorer = make_scorer(EN, lm, "word", -10.0, unk_char_offset=-2.0)
    scores = {}
    for text in ("zork blat the cat", "zorkblat the cat"):
        hyp = _best(spell(text.split(), 0.97), scorer, alpha=1.0, beta=0.0)
        assert EN.decode(hyp.tokens) == text
        scores[text] = hyp.lm_score
    assert scores["zork blat the cat"] == pytest.approx(scores["zorkblat the cat"], abs=1e-6)
    # and it is 8 characters x -2 plus the known words after one <unk> context
    known = lm.model.score("<unk> the cat", bos=True, eos=True) - lm.model.score("<unk>", bos=True, eos=False)
    assert scores["zorkblat the cat"] == pytest.approx(-16.0 + known * math.log(10), abs=1e-4)


def test_a_prefix_of_a_known_word_pays_its_characters_when_it_ends(lm):
    scorer = make_scorer(EN, lm, "word", -10.0, unk_char_offset=-3.0)
    hyp = _best(spell(["th", "cat"], 0.97), scorer, alpha=1.0, beta=0.0)
    assert EN.decode(hyp.tokens) == "th cat"
    known = lm.model.score("<unk> cat", bos=True, eos=True) - lm.model.score("<unk>", bos=True, eos=False)
    assert hyp.lm_score == pytest.approx(-6.0 + known * math.log(10), abs=1e-4)


def test_the_default_is_the_word_level_cost_and_a_positive_cost_is_refused():
    assert DecodeConfig().unk_char_offset == 0.0
    with pytest.raises(ValueError, match="unk_char_offset must be a number <= 0"):
        DecodeConfig(unk_char_offset=1.0)
