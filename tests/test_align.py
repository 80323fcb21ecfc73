"""ds2cli align: forced alignment, timestamps, features, filtering, and the command.

The model tests splice real FSDD clips into connected-digit strings (true word times known from
the splice) and train a small DS2 on them for a fixed number of steps (about a minute of CPU)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ds2cli.align.aligner import align_manifest, align_text, fit_filter
from ds2cli.align.corrupt import KINDS, corrupt_rows, corrupt_text
from ds2cli.align.filter import (LogisticFilter, ThresholdFilter, load_filter, parse_thresholds,
                                 save_filter)
from ds2cli.align.forced import (EMPTY, Boundaries, OUT_OF_ALPHABET, TOO_LONG, UNREADABLE, AlignmentError,
                                 TokenSpan, encode_transcript, snap_to_pauses, viterbi, word_spans)
from ds2cli.cli import main
from ds2cli.errors import DS2Error
from ds2cli.text import CharTokenizer
from conftest import SHARED_DATA

EN = CharTokenizer.english()


# ---------------------------------------------------------------- Viterbi path and spans (no model)

def _peaky(labels: list[int], vocab: int = 29, sharp: float = 8.0) -> torch.Tensor:
    """log_probs (T, V) whose per-frame argmax is `labels`."""
    logits = torch.zeros(len(labels), vocab)
    logits[torch.arange(len(labels)), torch.tensor(labels)] = sharp
    return logits.log_softmax(-1)


def test_viterbi_follows_the_clear_path():
    c, a, t = EN.encode("cat")
    frames = [0, c, c, 0, a, 0, 0, t, 0]
    path = viterbi(_peaky(frames), [c, a, t], EN.vocab)
    assert path.path.tolist() == frames
    assert [(s.token, s.start, s.end) for s in path.tokens] == [("c", 1, 3), ("a", 4, 5), ("t", 7, 8)]
    assert all(s.logp > -0.01 for s in path.tokens)


def test_repeated_label_needs_a_blank_between():
    (a,) = EN.encode("a")
    with pytest.raises(AlignmentError) as err:
        viterbi(_peaky([a, a]), [a, a], EN.vocab)
    assert err.value.reason == TOO_LONG
    spans = viterbi(_peaky([a, 0, a]), [a, a], EN.vocab).tokens
    assert [(s.start, s.end) for s in spans] == [(0, 1), (2, 3)]


def test_transcripts_that_cannot_be_encoded():
    with pytest.raises(AlignmentError) as err:
        encode_transcript("call 911", EN)
    assert err.value.reason == OUT_OF_ALPHABET and "'1'" in err.value.detail and "'9'" in err.value.detail
    with pytest.raises(AlignmentError) as err:
        encode_transcript("  ", EN)
    assert err.value.reason == EMPTY


def _spans(spec):
    return [TokenSpan(tok, s, e, 0.0) for tok, s, e in spec]


def test_words_split_on_space_pieces_and_characters():
    en = word_spans(_spans([("h", 2, 3), ("i", 4, 5), (" ", 6, 7), ("y", 9, 10), ("o", 11, 12)]),
                    EN, 0.02, start_shift=0, end_shift=0)
    assert [(w.word, w.start, w.end) for w in en] == [("hi", 0.04, 0.1), ("yo", 0.18, 0.24)]
    assert en[0].confidence == pytest.approx(1.0)

    class Bpe:
        word_separator = "\u2581"

    bpe = word_spans(_spans([("\u2581he", 0, 1), ("llo", 3, 4), ("\u2581", 6, 7), ("wor", 8, 9),
                             ("\u2581x", 12, 13)]), Bpe(), 0.04, start_shift=0, end_shift=0)
    assert [w.word for w in bpe] == ["hello", "wor", "x"]
    assert (bpe[1].start, bpe[1].end) == (pytest.approx(0.32), pytest.approx(0.36))  # "▁" alone has no time

    zh = CharTokenizer(list("你好"), "zh")
    assert [w.word for w in word_spans(_spans([("你", 0, 1), ("好", 2, 3)]), zh, 0.02)] == ["你", "好"]


def test_shifted_end_never_runs_into_the_next_word():
    words = word_spans(_spans([("a", 0, 1), (" ", 1, 2), ("b", 3, 4)]), EN, 0.02, start_shift=0, end_shift=0.5)
    assert words[0].end <= words[1].start


def test_edges_snap_to_a_silent_pause():
    energy = np.full(50, -20.0)
    energy[:5] = energy[20:30] = energy[45:] = -70.0  # silence before, between and after two words
    starts, ends = [0.2, 0.7], [0.3, 0.8]  # spike-based guesses (seconds, 20 ms frames)
    snap_to_pauses([(10, 15), (35, 40)], energy, starts, ends, 0.02)
    assert starts == pytest.approx([0.1, 0.6]) and ends == pytest.approx([0.4, 0.9])
    flat = np.full(50, -20.0) + np.random.default_rng(0).normal(0, 1, 50)  # no silence: nothing moves
    starts, ends = [0.2, 0.7], [0.3, 0.8]
    snap_to_pauses([(10, 15), (35, 40)], flat, starts, ends, 0.02)
    assert starts == [0.2, 0.7] and ends == [0.3, 0.8]


# ---------------------------------------------------------------- corruption and filters (no model)

def test_corruptions_change_the_transcript_within_its_vocabulary():
    rng, vocab = random.Random(0), ["one", "two", "three", "four"]
    others = ["two four", "one one three"]
    for kind in KINDS:
        for text in ["one two three", "four"]:
            out = corrupt_text(text, kind, rng, vocab, others)
            assert out != text and set(out.split()) <= set(vocab)
    assert len(corrupt_text("one two three", "drop", rng, vocab, others).split()) == 2
    assert len(corrupt_text("one two three", "insert", rng, vocab, others).split()) == 4
    assert corrupt_text("one two three", "swap", rng, vocab, others) in others
    with pytest.raises(ValueError):
        corrupt_text("one", "reverse", rng, vocab, others)
    rows = [{"id": str(i), "text": t} for i, t in enumerate(["one two"] * 50 + ["three four"] * 50)]
    out = corrupt_rows(rows, 0.17, random.Random(1))
    wrong = [r for r in out if "corruption" in r]
    assert len(wrong) == 17 and {r["corruption"] for r in wrong} == set(KINDS)
    assert all(r["text"] != r["original_text"] for r in wrong) and rows[0] == {"id": "0", "text": "one two"}


def test_thresholds_parse_and_explain_rejections():
    flt = ThresholdFilter.parse("greedy_cer<=0.4, mean_logp>=-1")
    assert flt.reject_reason({"greedy_cer": 0.1, "mean_logp": -0.5}) is None
    reason = flt.reject_reason({"greedy_cer": 0.9, "mean_logp": -2.0})
    assert reason.startswith("threshold:") and "greedy_cer 0.9 > 0.4" in reason and "mean_logp -2 < -1" in reason
    for bad in ["greedy_cer<0.4", "loudness<=3", "greedy_cer<=x", ""]:
        with pytest.raises(ValueError):
            parse_thresholds(bad)


def test_logistic_filter_fits_saves_as_json_and_reloads(tmp_path):
    rng = np.random.default_rng(0)
    names = ["greedy_cer", "score_gap"]
    good = [{"greedy_cer": abs(x), "score_gap": abs(y)} for x, y in rng.normal(0, 0.1, (100, 2))]
    bad = [{"greedy_cer": 0.6 + abs(x), "score_gap": 0.5 + abs(y)} for x, y in rng.normal(0, 0.2, (100, 2))]
    flt = LogisticFilter.fit(good + bad, [False] * 100 + [True] * 100, names)
    assert flt.info["fit_accuracy"] > 0.95
    save_filter(tmp_path / "f.json", flt)
    text = (tmp_path / "f.json").read_text()
    assert json.loads(text)["kind"] == "logistic"
    again = load_filter(tmp_path / "f.json")
    assert again.p_wrong(good[:5] + bad[:5]) == pytest.approx(flt.p_wrong(good[:5] + bad[:5]))
    assert again.reject_reason({"greedy_cer": 0.9, "score_gap": 0.9}).startswith("classifier: p(wrong)")
    assert again.reject_reason({"greedy_cer": 0.0, "score_gap": 0.0}) is None
    with pytest.raises(ValueError):
        LogisticFilter.fit(good, [False] * 100, names)  # one class only


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON filter file"),
    ('{"format": "other"}', "not a ds2cli alignment filter"),
    ('{"format": "ds2cli-align-filter", "kind": "tree"}', "unknown filter kind"),
    ('{"format": "ds2cli-align-filter", "kind": "logistic", "features": ["x"], "mean": [0], "std": [1], '
     '"weights": [1], "bias": 0}', "bad filter"),
])
def test_bad_filter_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "filter.json"
    path.write_text(content)
    with pytest.raises(DS2Error, match=message) as err:
        load_filter(path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------- real audio, briefly trained model

MAX_STEPS = 600  # training stops sooner, once the running CTC loss is below STOP_LOSS
STOP_LOSS = 0.1


pytestmark = pytest.mark.usefixtures("one_torch_thread")


FSDD = SHARED_DATA / "fsdd"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A small DS2 trained on spliced FSDD digit strings, and held-out strings with true word times.
    Returns dict(checkpoint, dev, heldout (manifests of unseen takes), truth {id: words})."""
    from ds2cli.align.splice import fsdd_strings
    from ds2cli.audio import write_audio
    from ds2cli.checkpoint import build_checkpoint, save_checkpoint
    from ds2cli.features import FeatureConfig, compute_stats, log_spectrogram
    from ds2cli.manifest import write_manifest
    from ds2cli.model import ConvLayer, DeepSpeech2, ModelConfig

    if not FSDD.is_dir():  # conftest's fsdd_dir, for a module-scoped fixture
        pytest.skip(f"real recordings not found at {FSDD} (../shared/data is absent)")
    folder = tmp_path_factory.mktemp("digits")
    rng = random.Random(0)
    recordings = FSDD / "recordings"
    train = fsdd_strings(recordings, 200, rng, range(5, 50), words=(1, 3))
    held_out = fsdd_strings(recordings, 16, rng, range(0, 5), words=(2, 4))
    dev = fsdd_strings(recordings, 20, rng, range(0, 5), words=(2, 4))  # for fitting a filter
    truth, manifests = {}, {}
    for name, utts in [("dev", dev), ("heldout", held_out)]:
        rows = []
        for i, u in enumerate(utts):
            path = folder / f"{name}{i:03d}.wav"
            write_audio(path, u.wave, u.sample_rate)
            rows.append({"audio_filepath": str(path), "duration": u.duration, "text": u.text, "id": path.stem})
            truth[path.stem] = u.words
        manifests[name] = folder / f"{name}.jsonl"
        write_manifest(manifests[name], rows)

    cfg = FeatureConfig()
    stats = compute_stats([u.wave for u in train], cfg)
    feats = [stats.normalise(log_spectrogram(torch.from_numpy(u.wave), cfg)) for u in train]
    targets = [torch.tensor(EN.encode(u.text)) for u in train]
    torch.manual_seed(0)
    model = DeepSpeech2(ModelConfig(conv_type="1d", conv=[ConvLayer(128, (1, 5), (1, 2))], rnn_layers=1,
                                    rnn_hidden=128), len(EN))
    opt = torch.optim.Adam(model.parameters())
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    running = None
    for step in range(MAX_STEPS):
        for group in opt.param_groups:  # 20 warm-up steps, then linear decay to a fifth
            group["lr"] = 5e-3 * min(1.0, (step + 1) / 20) * (1 - 0.8 * step / MAX_STEPS)
        idx = rng.sample(range(len(train)), 8)
        lengths = torch.tensor([feats[i].shape[0] for i in idx])
        x = torch.zeros(8, int(lengths.max()), cfg.n_bins)
        for j, i in enumerate(idx):
            x[j, : lengths[j]] = feats[i]
        logits, out_lengths = model(x, lengths)
        loss = ctc(logits.log_softmax(-1).transpose(0, 1), torch.cat([targets[i] for i in idx]), out_lengths,
                   torch.tensor([len(targets[i]) for i in idx]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if running < STOP_LOSS:
            break
    checkpoint = folder / "model.pt"
    save_checkpoint(checkpoint, build_checkpoint(model.eval(), EN, cfg, stats))
    return {"checkpoint": checkpoint, **manifests, "truth": truth, "steps": step + 1, "final_loss": running}


@pytest.fixture(scope="module")
def recognizer(digits):
    from ds2cli.inference import Recognizer

    return Recognizer.from_checkpoint(digits["checkpoint"])


@pytest.fixture(scope="module")
def eval_run(digits, recognizer):
    from ds2cli.manifest import read_manifest

    return align_manifest(read_manifest(digits["heldout"]), recognizer, batch_size=8)


def _boundary_errors(run, truth) -> np.ndarray:
    errors = []
    for a in run.alignments:
        assert a.ok, a.reason
        assert [w.word for w in a.words] == [w["word"] for w in truth[a.id]]
        for got, want in zip(a.words, truth[a.id]):
            errors += [abs(got.start - want["start"]), abs(got.end - want["end"])]
    return np.array(errors)


def test_word_times_match_the_splice(digits, eval_run):
    errors = _boundary_errors(eval_run, digits["truth"])
    assert np.median(errors) < 0.04, f"median word-boundary error {np.median(errors):.3f} s"
    for a in eval_run.alignments:
        assert all(0 <= w.start < w.end <= a.duration + 1e-6 for w in a.words)
        assert all(x.end <= y.start + 1e-6 for x, y in zip(a.words, a.words[1:]))  # in order, no overlap


def test_spike_boundaries_are_calibrated(digits, recognizer):
    """Without pause snapping the spike times plus the calibrated shifts still land near the truth."""
    from ds2cli.manifest import read_manifest

    run = align_manifest(read_manifest(digits["heldout"]), recognizer, batch_size=8, boundaries=Boundaries(snap=False))
    errors = _boundary_errors(run, digits["truth"])
    assert np.median(errors) < 0.12, f"median word-boundary error {np.median(errors):.3f} s"


def test_corrupted_transcripts_score_worse(digits, recognizer):
    from ds2cli.align.aligner import emissions
    from ds2cli.manifest import read_manifest

    rows = read_manifest(digits["heldout"])
    texts = [r["text"] for r in rows]
    vocab = sorted({w for t in texts for w in t.split()} | {"zero", "five"})
    rng, worse, pairs = random.Random(3), 0, 0
    for e in emissions(rows, recognizer):
        true = align_text(e, e.row["text"], recognizer)
        for kind in KINDS:
            bad = align_text(e, corrupt_text(e.row["text"], kind, rng, vocab, texts), recognizer)
            if not bad.ok:
                assert bad.reason == TOO_LONG
                continue
            pairs += 1
            # same emission: a lower path score is also a larger gap to the best path
            worse += bad.features["mean_logp"] < true.features["mean_logp"]
    assert pairs >= 3 * len(rows) and worse / pairs >= 0.9, f"{worse}/{pairs} corrupted transcripts scored worse"


def test_alignment_features_are_sane(eval_run):
    for a in eval_run.alignments:
        f = a.features
        assert f["mean_logp"] <= 0 and f["min_logp"] <= f["mean_logp"] and f["score_gap"] >= 0
        assert 0 <= f["blank_share"] < 1 and 0 <= f["greedy_cer"] and f["duration"] == pytest.approx(a.duration)
        assert f["chars_per_second"] == pytest.approx(len(a.text.replace(" ", "")) / a.duration)
        assert all(t.start < t.end and t.logp <= 0 for t in a.tokens)
    assert np.mean([a.features["greedy_cer"] for a in eval_run.alignments]) < 0.35


def _write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_rejection_reason(digits, tmp_path):
    """Good rows are kept; each kind of bad row is rejected with its own reason, none crashes the run."""
    from ds2cli.manifest import read_manifest

    rows = read_manifest(digits["heldout"])
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav file")
    good = rows[:8]
    bad = {
        "too_long": {**rows[8], "id": "too_long", "text": " ".join(["seven"] * 60)},
        "digits": {**rows[9], "id": "digits", "text": "call 911"},
        "empty": {**rows[10], "id": "empty", "text": ""},
        "broken": {**rows[11], "id": "broken", "audio_filepath": str(tmp_path / "broken.wav")},
        "missing": {**rows[12], "id": "missing", "audio_filepath": str(tmp_path / "nope.wav")},
        "swapped": {**rows[13], "id": "swapped", "text": "nine nine nine eight eight eight"},
    }
    manifest = _write_rows(tmp_path / "noisy.jsonl", good + list(bad.values()))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["align", str(manifest), "-c", str(digits["checkpoint"]), "--out", str(out),
                                       "--filter", "--thresholds", "score_gap<=0.5", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "aligned 9/14" in result.output and "kept 8, rejected 6" in result.output, \
        result.output + (out / "rejected.jsonl").read_text()
    kept = [json.loads(line)["id"] for line in (out / "kept.jsonl").read_text().splitlines()]
    rejected = {r["id"]: r["reject_reason"]
                for r in map(json.loads, (out / "rejected.jsonl").read_text().splitlines())}
    assert kept == [r["id"] for r in good]
    assert rejected["too_long"].startswith(TOO_LONG)
    assert rejected["digits"].startswith(OUT_OF_ALPHABET) and "'1'" in rejected["digits"]
    assert rejected["empty"] == EMPTY
    assert rejected["broken"].startswith(UNREADABLE) and "broken.wav" in rejected["broken"]
    assert rejected["missing"].startswith(UNREADABLE) and "no such file" in rejected["missing"]
    assert rejected["swapped"].startswith("threshold: score_gap")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == {TOO_LONG: 1, OUT_OF_ALPHABET: 1, EMPTY: 1, UNREADABLE: 2}
    assert summary["rejected_by_reason"]["threshold"] == 1


def test_alignment_outputs(digits, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["align", str(digits["heldout"]), "-c", str(digits["checkpoint"]),
                                       "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["aligned"] == summary["utterances"] == 16 and summary["realtime_factor"] > 0
    assert not (out / "kept.jsonl").exists()  # no --filter, no filtering
    rows = [json.loads(line) for line in (out / "alignments.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"heldout{i:03d}" for i in range(16)]
    first = rows[0]
    assert {"features", "words", "tokens", "audio_filepath"} <= set(first)
    assert "".join(t["token"] for t in first["tokens"]) == first["text"]
    tokens = first["tokens"]
    assert all(0 <= t["start"] < t["end"] <= first["duration"] + 0.02 and t["logp"] <= 0 for t in tokens)
    assert all(a["end"] <= b["start"] for a, b in zip(tokens, tokens[1:]))  # seconds, in order
    assert summary["frame_seconds"] == pytest.approx(0.02)
    ctm = (out / "words.ctm").read_text().splitlines()
    assert len(ctm) == sum(len(r["words"]) for r in rows)
    utt, channel, start, dur, word, conf = ctm[0].split()
    assert (utt, channel, word) == ("heldout000", "1", first["words"][0]["word"])
    assert float(start) == pytest.approx(first["words"][0]["start"], abs=1e-3) and float(dur) > 0
    assert 0 <= float(conf) <= 1


def test_fit_filter_then_reuse_it(digits, recognizer, tmp_path):
    """Fitted on a dev set (not the model's training data, on which the model is over-confident)."""
    from ds2cli.manifest import read_manifest

    filter_path = tmp_path / "filter.json"
    result = CliRunner().invoke(main, ["align", str(digits["dev"]), "-c", str(digits["checkpoint"]), "--out",
                                       str(tmp_path / "fit"), "--fit-filter", "--out-filter", str(filter_path),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "fitted logistic regression" in result.output and filter_path.is_file()

    rows = read_manifest(digits["heldout"])
    noisy = corrupt_rows(rows, 0.5, random.Random(5))
    manifest = _write_rows(tmp_path / "noisy.jsonl", noisy)
    result = CliRunner().invoke(main, ["align", str(manifest), "-c", str(digits["checkpoint"]), "--out",
                                       str(tmp_path / "out"), "--filter", "--filter-model", str(filter_path),
                                       "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    rejected = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "rejected.jsonl").read_text().splitlines())}
    wrong = {r["id"] for r in noisy if "corruption" in r}
    caught = len(wrong & set(rejected))
    false_alarms = len(set(rejected) - wrong)
    assert caught >= 0.75 * len(wrong) and false_alarms <= 2, (caught, len(wrong), false_alarms)
    assert all(r["reject_reason"].startswith("classifier: p(wrong)") for r in rejected.values())

    fitted = fit_filter(read_manifest(digits["dev"]), recognizer, seed=0)  # the library call, same thing
    assert fitted.utterances == 20 and fitted.filter.info["fit_utterances"] >= 35


def test_test_sets_are_not_filtered_unless_asked(digits, tmp_path):
    test_manifest = tmp_path / "test.jsonl"
    test_manifest.write_text(digits["heldout"].read_text())
    args = ["align", str(test_manifest), "-c", str(digits["checkpoint"]), "--out", str(tmp_path / "o"), "--filter"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "looks like a test set" in result.output
    result = CliRunner().invoke(main, args + ["--allow-test", "--quiet"])
    assert result.exit_code == 0, result.output
    args[5] = str(tmp_path / "plain")
    result = CliRunner().invoke(main, args[:-1] + ["--quiet"])  # aligning a test set is fine
    assert result.exit_code == 0 and not (tmp_path / "plain" / "kept.jsonl").exists()


def test_default_checkpoint_is_the_last_trained_recipe(digits, tmp_path, monkeypatch):
    import shutil

    exp = tmp_path / "exp" / "digits"
    (exp / "checkpoints").mkdir(parents=True)
    shutil.copy(digits["checkpoint"], exp / "checkpoints" / "best.pt")
    (tmp_path / "exp" / "LAST").write_text(f"digits\n{exp}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["align", str(digits["heldout"]), "--out", "o", "--json", "--no-ctm"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["checkpoint"].endswith("exp/digits/checkpoints/best.pt")
    assert not (tmp_path / "o" / "words.ctm").exists()


@pytest.mark.parametrize("args, code, message", [
    (["--filter", "--thresholds", "greedy_cer<0.5"], 2, "expected FEATURE<=VALUE"),
    (["--thresholds", "greedy_cer<=0.5"], 2, "need --filter"),
    (["--fit-filter", "--filter"], 2, "second run"),
    (["--filter", "--filter-model", "nowhere.json"], 1, "nowhere.json: no such filter file"),
    (["-c", "nowhere.pt"], 1, "nowhere.pt: no such checkpoint"),
])
def test_bad_options_give_one_line_errors(digits, tmp_path, args, code, message):
    if "-c" not in args:
        args = args + ["-c", str(digits["checkpoint"])]
    result = CliRunner().invoke(main, ["align", str(digits["heldout"]), "--out", str(tmp_path / "o")] + args)
    assert result.exit_code == code and message in result.output, result.output


def test_missing_manifest_and_no_trained_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["align", "nope.jsonl", "-c", "x.pt"])
    assert result.exit_code == 1 and "nope.jsonl: no such manifest" in result.output
    _write_rows(tmp_path / "m.jsonl", [{"audio_filepath": "a.wav", "duration": 1, "text": "a"}])
    result = CliRunner().invoke(main, ["align", "m.jsonl"])
    assert result.exit_code == 1 and "exp/LAST: no trained model found" in result.output


def test_help():
    result = CliRunner().invoke(main, ["align", "--help"])
    assert result.exit_code == 0 and "--fit-filter" in result.output and "--allow-test" in result.output


def test_fitting_needs_transcripts_to_corrupt(digits, tmp_path):
    from ds2cli.manifest import read_manifest

    rows = read_manifest(digits["heldout"])[:3]
    manifest = _write_rows(tmp_path / "same.jsonl", [{**r, "text": "one two"} for r in rows])
    result = CliRunner().invoke(main, ["align", str(manifest), "-c", str(digits["checkpoint"]), "--fit-filter",
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no other transcript to swap with" in result.output
