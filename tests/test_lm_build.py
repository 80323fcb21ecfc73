"""Building KenLM models with the real lmplz/build_binary, loading them, and every bad LM input."""
import math
import sys

import pytest
from click.testing import CliRunner

from ds2cli.cli import main
from ds2cli.decode.config import LMConfig
from ds2cli.decode.lm import check_fit, detect_level, load_lm
from ds2cli.decode.lm_build import build_lm, find_tool
from ds2cli.errors import DS2Error
from ds2cli.text import CharTokenizer

EN = CharTokenizer.english()
TEXT = ("The cat sat on the mat.\nA dog sat on the LOG!\n\"The cat,\" she said, \"ran.\"\n"
        "the dog ran on the mat\nthe cat sat\n") * 2


def ngram_counts(arpa) -> dict[int, int]:
    counts = {}
    for line in open(arpa, encoding="utf-8"):
        if line.startswith("ngram "):
            n, c = line[6:].split("=")
            counts[int(n)] = int(c)
        if line.startswith("\\1-grams"):
            break
    return counts


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_build_word_lm_normalises_text_and_writes_all_files(corpus, tmp_path):
    built = build_lm(corpus, tmp_path / "lm", LMConfig(order=3))
    assert (built.level, built.language, built.order) == ("word", "en", 3)
    words = set("the cat sat on mat a dog log she said ran".split())
    assert ngram_counts(built.arpa)[1] == len(words) + 3  # and <s>, </s>, <unk>
    lm = load_lm(built.binary)
    assert set(lm.vocab) == words
    assert lm.order == 3 and lm.level == "word"
    # the binary and the ARPA give the same scores
    arpa = load_lm(built.arpa)
    s = "the dog sat on the mat"
    assert lm.model.score(s) == pytest.approx(arpa.model.score(s), abs=1e-4)
    assert "log" in lm and "LOG" not in lm  # normalised like transcripts


def test_rebuild_is_skipped_unless_inputs_change(corpus, tmp_path):
    first = build_lm(corpus, tmp_path / "lm", LMConfig(order=2))
    mtime = (tmp_path / "lm" / "lm.bin").stat().st_mtime_ns
    again = build_lm(corpus, tmp_path / "lm", LMConfig(order=2))
    assert again.skipped and (tmp_path / "lm" / "lm.bin").stat().st_mtime_ns == mtime
    assert not first.skipped
    assert not build_lm(corpus, tmp_path / "lm", LMConfig(order=3)).skipped
    assert not build_lm(corpus, tmp_path / "lm", LMConfig(order=3), force=True).skipped


def test_top_k_restricts_the_vocabulary(corpus, tmp_path):
    built = build_lm(corpus, tmp_path / "lm", LMConfig(order=2, top_k=3))
    # "the" (16), then cat/on/sat (6 each): ties go alphabetically
    assert set(load_lm(built.binary).vocab) == {"the", "cat", "on"}


def test_prune_drops_rare_ngrams(corpus, tmp_path):
    full = ngram_counts(build_lm(corpus, tmp_path / "a", LMConfig(order=3)).arpa)
    pruned = ngram_counts(build_lm(corpus, tmp_path / "b", LMConfig(order=3, prune="0 2 2")).arpa)
    assert pruned[1] == full[1] and pruned[3] < full[3]


def test_character_level_lm_for_mandarin(tmp_path):
    (tmp_path / "zh.txt").write_text("我们很好。\n你好，我们！\n", encoding="utf-8")
    built = build_lm(tmp_path / "zh.txt", tmp_path / "lm", LMConfig(order=2))
    lm = load_lm(built.binary)
    assert built.level == "char" and set(lm.vocab) == set("我们很好你")
    zh = CharTokenizer(list("我们很好你"), "zh")
    assert detect_level(lm, zh) == "char"
    check_fit(lm, zh, "char")


def test_english_character_level_lm_spells_spaces(corpus, tmp_path):
    built = build_lm(corpus, tmp_path / "lm", LMConfig(order=4, level="char"))
    lm = load_lm(built.binary)
    assert "|" in lm.vocab and "t" in lm.vocab and built.level == "char"
    check_fit(lm, EN, "char")


def test_bad_corpora(tmp_path):
    with pytest.raises(DS2Error, match="no such corpus"):
        build_lm(tmp_path / "missing.txt", tmp_path / "lm")
    (tmp_path / "punct.txt").write_text("...\n!!\n")
    with pytest.raises(DS2Error, match="no text after normalisation"):
        build_lm(tmp_path / "punct.txt", tmp_path / "lm")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DS2Error, match="not UTF-8"):
        build_lm(tmp_path / "bin.txt", tmp_path / "lm")
    (tmp_path / "ok.txt").write_text("a b c\n")
    with pytest.raises(DS2Error, match="thresholds"):
        build_lm(tmp_path / "ok.txt", tmp_path / "lm", LMConfig(order=2, prune=[0, 0, 1]))
    with pytest.raises(ValueError, match="non-decreasing"):
        LMConfig(order=3, prune="0 2 1")  # lmplz would refuse it; say so before running it


def test_missing_kenlm_tools_name_make_setup(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DS2Error, match="make setup"):
        find_tool("lmplz")


def test_bad_lm_files(corpus, tmp_path):
    with pytest.raises(DS2Error, match="no such language model"):
        load_lm(tmp_path / "missing.bin")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(DS2Error, match="junk.bin: not a (readable )?KenLM model"):
        load_lm(junk)
    built = build_lm(corpus, tmp_path / "lm", LMConfig(order=2))
    truncated = tmp_path / "trunc.bin"
    truncated.write_bytes(open(built.binary, "rb").read()[:300])
    with pytest.raises(DS2Error, match="trunc.bin: not a readable KenLM model"):
        load_lm(truncated)
    text = tmp_path / "text.arpa"
    text.write_text("hello world\n")
    with pytest.raises(DS2Error, match="text.arpa: not a readable KenLM model"):
        load_lm(text)


def test_word_lm_binary_needs_its_vocabulary(corpus, tmp_path):
    from ds2cli.decode.lm_scorer import make_scorer

    built = build_lm(corpus, tmp_path / "lm", LMConfig(order=2))
    lone = tmp_path / "lone.bin"
    lone.write_bytes(open(built.binary, "rb").read())  # a binary without lone.vocab beside it
    lm = load_lm(lone)
    assert lm.vocab is None
    with pytest.raises(DS2Error, match="lone.vocab"):
        make_scorer(EN, lm, "word")
    assert make_scorer(EN, load_lm(built.arpa), "word")  # an ARPA file carries its words


def test_lm_vocabulary_must_fit_the_alphabet(tmp_path):
    (tmp_path / "zh.txt").write_text("我们很好\n你好我们\n", encoding="utf-8")
    zh_words = load_lm(build_lm(tmp_path / "zh.txt", tmp_path / "lm", LMConfig(order=2, level="word")).binary)
    with pytest.raises(DS2Error, match="does not fit the model's alphabet"):
        check_fit(zh_words, EN, "word")
    zh = CharTokenizer(list("我们很好你"), "zh")
    with pytest.raises(DS2Error, match="needs a character LM"):
        check_fit(zh_words, zh, "word")


def test_lm_build_cli(corpus, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["lm", "build", str(corpus), "--out", str(tmp_path / "lm"), "--order", "2",
                               "--prune", "0 1"])
    assert res.exit_code == 0, res.output
    assert "2-gram word-level en LM built" in res.output
    lm = load_lm(tmp_path / "lm" / "lm.bin")
    assert lm.end_score(lm.start_state) < 0 and math.isfinite(lm.score(lm.start_state, "the")[0])
    res = runner.invoke(main, ["lm", "build", str(tmp_path / "nope.txt")])
    assert res.exit_code == 1 and "nope.txt: no such corpus file" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(main, ["lm", "build", str(corpus), "--prune", "x"])
    assert res.exit_code != 0 and "--prune" in res.output
