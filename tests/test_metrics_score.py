"""WER/CER must equal jiwer's on the same pairs; `ds2cli score` end to end."""
import json
import random

import jiwer
import pytest
from click.testing import CliRunner

from ds2cli.cli import main
from ds2cli.metrics import cer, edit_counts, score_pairs, wer

WORDS = "the a cat dog sat on mat hello world x y z quick brown fox".split()


def _random_pairs(seed: int, n: int = 60):
    rng = random.Random(seed)
    refs, hyps = [], []
    for _ in range(n):
        ref = [rng.choice(WORDS) for _ in range(rng.randint(1, 12))]
        hyp = list(ref)
        for _ in range(rng.randint(0, 5)):
            op = rng.random()
            if op < 0.33 and hyp:
                hyp.pop(rng.randrange(len(hyp)))
            elif op < 0.66:
                hyp.insert(rng.randint(0, len(hyp)), rng.choice(WORDS))
            elif hyp:
                hyp[rng.randrange(len(hyp))] = rng.choice(WORDS)
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp) or "x")  # jiwer rejects empty hypotheses in some versions
    return refs, hyps


@pytest.mark.parametrize("seed", range(5))
def test_wer_cer_equal_jiwer(seed):
    refs, hyps = _random_pairs(seed)
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    out = jiwer.process_words(refs, hyps)
    total = score_pairs([(str(i), r, h) for i, (r, h) in enumerate(zip(refs, hyps))]).wer
    assert (total.substitutions, total.deletions, total.insertions, total.hits) == (
        out.substitutions, out.deletions, out.insertions, out.hits)


def test_edge_cases_equal_jiwer():
    refs = ["hello world", "a", "one two three", "  spaced   out  "]
    hyps = ["hello", "a b c", "three two one", "spaced out"]
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps))


def test_edit_counts_simple():
    c = edit_counts(list("abc"), list("abd"))
    assert (c.substitutions, c.deletions, c.insertions, c.hits) == (1, 0, 0, 2)
    assert edit_counts([], ["x"]).insertions == 1
    assert edit_counts(["x"], []).deletions == 1


def test_mandarin_scored_by_characters():
    s = score_pairs([("u", "今天天气很好", "今天天汽很好")], language="zh")
    assert s.wer.rate == pytest.approx(1 / 6) and s.cer.rate == pytest.approx(1 / 6)


def test_score_cli_decode_jsonl_against_manifest(tmp_path):
    manifest = tmp_path / "test.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": f"{u}.wav", "duration": 1.0, "text": t, "id": u}) + "\n"
                                for u, t in [("u1", "the cat sat"), ("u2", "hello world"), ("u3", "good bye")]))
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text(json.dumps({"_meta": {"checkpoint": "x"}}) + "\n" + "".join(
        json.dumps({"id": u, "text": t}) + "\n" for u, t in [("u1", "The cat sat."), ("u2", "hello word")]))
    result = CliRunner().invoke(main, ["score", str(manifest), str(hyp), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.split("warning")[0] if result.output.startswith("{") else result.output)
    # u1 normalises to a perfect match; u2 one substitution; u3 missing -> two deletions
    assert report["wer"]["errors"] == 3 and report["wer"]["ref_len"] == 7
    assert report["wer"]["deletions"] == 2 and report["missing_hypotheses"] == ["u3"]
    assert report["best"]["id"] == "u1" and report["worst"]["id"] == "u3"

    text = CliRunner().invoke(main, ["score", str(manifest), str(hyp)])
    assert "WER: 42.86%" in text.output and "S=1 D=2 I=0" in text.output


def test_score_cli_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    ok = tmp_path / "ok.txt"
    ok.write_text("u1 hi\n")
    result = CliRunner().invoke(main, ["score", str(ok), str(bad)])
    assert result.exit_code == 1 and "bad.jsonl:1: not valid JSON" in result.output
    result = CliRunner().invoke(main, ["score", str(ok), str(tmp_path / "nope.txt")])
    assert result.exit_code != 0 and "nope.txt" in result.output
