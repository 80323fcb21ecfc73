"""Decoding real audio with a real (briefly trained) model: files in any format, manifests, the
CLI, recipes and defaults, bf16, long audio, alpha/beta tuning, and every bad input."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from ds2cli.cli import main
from ds2cli.decode.decoder import Decoder, load_decoder, load_recognizer
from ds2cli.decode.beam import beam_search
from ds2cli.decode.config import DecodeConfig, LMConfig
from ds2cli.decode.lm import load_lm
from ds2cli.decode.lm_build import build_lm
from ds2cli.decode.tune import grid, tune
from ds2cli.metrics import wer
from conftest import SHARED_DATA
from fixtures_model import train_digits_model

FSDD = SHARED_DATA / "fsdd"
NAME = "digits-test"  # the recipe name stored in the fixture's checkpoint
EXTRA_LM_TEXT = ["one two three", "four five six", "seven eight nine zero", "nine eight seven"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    """exp_root/<NAME>/ with checkpoints/best.pt, lm_text.txt and the training manifest."""
    if not FSDD.is_dir():
        pytest.skip(f"real recordings not found at {FSDD} (../shared/data is absent)")
    root = tmp_path_factory.mktemp("exp")
    model = train_digits_model(FSDD, root / NAME)
    (root / NAME / "lm_text.txt").write_text("\n".join(model.texts + EXTRA_LM_TEXT) + "\n")
    return root, model


@pytest.fixture(scope="module")
def lm_path(exp, tmp_path_factory):
    root, _ = exp
    return build_lm(root / NAME / "lm_text.txt", tmp_path_factory.mktemp("lm"), LMConfig(order=3)).binary


def rows(model):
    return [json.loads(line) for line in model.manifest.read_text().splitlines()]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_model_fixture_learned_something(exp):
    _, model = exp
    assert model.greedy_cer <= 0.1, f"fixture model did not train (CER {model.greedy_cer:.2f})"


def test_any_format_rate_and_channel_count_gives_the_same_transcript(exp, lm_path, tmp_path):
    root, model = exp
    row = rows(model)[0]
    wave, rate = sf.read(row["audio_filepath"], dtype="float32")
    sf.write(tmp_path / "a.flac", wave, rate)
    sf.write(tmp_path / "b.ogg", wave, rate, format="OGG", subtype="VORBIS", compression_level=0.0)  # best quality
    import torch
    import torchaudio.functional as AF

    w441 = AF.resample(torch.from_numpy(wave), rate, 44100).numpy()
    sf.write(tmp_path / "c.wav", np.stack([w441, 0.5 * w441], axis=1), 44100)  # stereo, 44.1 kHz
    sf.write(tmp_path / "d.wav", AF.resample(torch.from_numpy(wave), rate, 8000).numpy(), 8000)
    decoder = load_decoder(model.checkpoint, lm=str(lm_path))
    assert decoder.method == "beam"
    files = [row["audio_filepath"]] + [str(tmp_path / n) for n in ("a.flac", "b.ogg", "c.wav", "d.wav")]
    done, errors = decoder.decode_files(files)
    assert not errors
    # lossless copies decode identically; lossy and resampled ones may differ by a word or so
    # (a briefly trained model near a decision boundary differs across processors)
    assert [t.text for t in done[:2]] == [row["text"]] * 2
    assert all(wer([row["text"]], [t.text]) <= 0.4 for t in done[2:]), [t.text for t in done]
    words = done[0].timing
    assert [w["word"] for w in words] == row["text"].split()
    assert all(0 <= w["start"] < w["end"] <= row["duration"] + 0.05 for w in words)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))


def test_cli_prints_transcripts_and_json_meta(exp, lm_path):
    root, model = exp
    r = rows(model)
    res = run("decode", r[0]["audio_filepath"], "--checkpoint", model.checkpoint, "--lm", lm_path)
    assert res.exit_code == 0, res.output
    assert res.output.strip() == r[0]["text"]
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = run("decode", r[0]["audio_filepath"], r[1]["audio_filepath"], "--checkpoint", model.checkpoint,
                  "--lm", lm_path, "--beam-size", 12, "--alpha", 0.4, "--beta", 0.7, "--nbest", 3, "--json",
                  "--threads", 2)
        assert torch.get_num_threads() == 2  # --threads took effect
    finally:
        torch.set_num_threads(before)
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    meta = lines[0]["_meta"]
    assert meta["checkpoint"] == str(model.checkpoint) and meta["lm"] == str(lm_path)
    assert (meta["beam_size"], meta["alpha"], meta["beta"], meta["nbest"]) == (12, 0.4, 0.7, 3)
    assert (meta["cutoff_prob"], meta["cutoff_top_n"], meta["method"], meta["lm_level"]) == (0.99, 40, "beam", "word")
    assert [x["text"] for x in lines[1:]] == [r[0]["text"], r[1]["text"]]
    assert 1 <= len(lines[1]["nbest"]) <= 3 and lines[1]["nbest"][0]["text"] == r[0]["text"]


def test_manifest_decode_skips_bad_rows_and_feeds_score(exp, lm_path, tmp_path):
    root, model = exp
    good = rows(model)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(tmp_path / "short.wav", np.zeros(10, dtype=np.float32), 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 10)
    bad = [{"audio_filepath": str(tmp_path / n), "duration": 1.0, "text": "one", "id": n}
           for n in ("missing.wav", "empty.wav", "short.wav", "corrupt.wav")]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in good[:3] + bad + good[3:]))
    out = tmp_path / "hyp.jsonl"
    res = run("decode", "--manifest", manifest, "--checkpoint", model.checkpoint, "--lm", lm_path,
              "--out", out, "--batch-size", 3, "--json")
    assert res.exit_code == 0, res.output
    for name in ("missing.wav", "empty.wav", "short.wav", "corrupt.wav"):
        assert f"skipped {name}:" in res.output
    assert "decoded 8 of 12 utterances" in res.output and "skipped 4 bad row(s)" in res.output
    hyps = [json.loads(x) for x in out.read_text().splitlines()]
    assert "_meta" in hyps[0] and [h["id"] for h in hyps[1:]] == [g["id"] for g in good]
    assert all({"id", "text", "score", "timing", "duration"} <= set(h) for h in hyps[1:])
    scored = run("score", model.manifest, out, "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["wer"]["rate"] == pytest.approx(wer([g["text"] for g in good],
                                                                          [h["text"] for h in hyps[1:]]))
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("".join(json.dumps(r) + "\n" for r in bad))
    res = run("decode", "--manifest", only_bad, "--checkpoint", model.checkpoint, "--no-lm", "--out", tmp_path / "x")
    assert res.exit_code == 1 and "no row could be decoded" in res.output


def test_bad_inputs_give_one_line_errors(exp, tmp_path):
    root, model = exp
    audio = rows(model)[0]["audio_filepath"]

    def fails(*args, match):
        res = run("decode", *args)
        assert res.exit_code == 1, res.output
        errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1 and match in errors[0], res.output

    import torch

    torch.save({"model": torch.zeros(3)}, tmp_path / "other.pt")
    fails(audio, "--checkpoint", tmp_path / "other.pt", match="not a ds2cli checkpoint")
    (tmp_path / "text.pt").write_text("hello")
    fails(audio, "--checkpoint", tmp_path / "text.pt", match="not a ds2cli checkpoint")
    fails(audio, "--checkpoint", tmp_path / "none.pt", match="no such checkpoint")
    fails(audio, "--checkpoint", model.checkpoint, "--lm", tmp_path / "none.bin", match="no such language model")
    (tmp_path / "bad.bin").write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\0" + bytes(300))
    fails(audio, "--checkpoint", model.checkpoint, "--lm", tmp_path / "bad.bin", match="KenLM model")
    (tmp_path / "zh.txt").write_text("我们很好\n你好我们\n", encoding="utf-8")
    zh = build_lm(tmp_path / "zh.txt", tmp_path / "zh", LMConfig(order=2, level="word")).binary
    fails(audio, "--checkpoint", model.checkpoint, "--lm", zh, match="does not fit the model's alphabet")
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    fails(tmp_path / "empty.wav", "--checkpoint", model.checkpoint, "--no-lm", match="empty audio")
    (tmp_path / "noise.flac").write_bytes(bytes(range(256)) * 4)
    fails(tmp_path / "noise.flac", "--checkpoint", model.checkpoint, "--no-lm", match="unreadable audio")
    # a bad file among good ones: the good ones are still transcribed
    res = run("decode", audio, tmp_path / "gone.wav", "--checkpoint", model.checkpoint, "--no-lm")
    assert res.exit_code == 1 and rows(model)[0]["text"] in res.output and "gone.wav: no such file" in res.output
    fails(audio, "--exp-dir", tmp_path / "noexp", match="train")


def test_bf16_inference_matches_fp32(exp, lm_path):
    root, model = exp
    r = rows(model)
    refs, files = [x["text"] for x in r], [x["audio_filepath"] for x in r]
    result = {}
    for precision in ("fp32", "bf16"):
        dec = load_decoder(model.checkpoint, lm=str(lm_path), options={"precision": precision})
        assert dec.recognizer.precision == precision
        result[precision] = wer(refs, [t.text for t in dec.decode_files(files)[0]])
    assert abs(result["bf16"] - result["fp32"]) <= 0.001


def test_long_audio_is_decoded_in_chunks(exp, lm_path, tmp_path):
    root, model = exp
    r = rows(model) * 3
    wave = np.concatenate([sf.read(x["audio_filepath"], dtype="float32")[0] for x in r])
    sf.write(tmp_path / "long.wav", wave, 16000)
    assert len(wave) / 16000 > 35  # longer than one 30 s chunk
    decoder = load_decoder(model.checkpoint, lm=str(lm_path))
    done, errors = decoder.decode_files([tmp_path / "long.wav"])
    assert not errors
    # words from the whole file, not one chunk: every third of it holds recognised words
    third = len(wave) / 16000 / 3
    starts = [w["start"] for w in done[0].timing]
    assert all(any(k * third <= s < (k + 1) * third for s in starts) for k in range(3)), starts
    assert done[0].timing[-1]["end"] > 35
    # the same as running the network over the whole file at once (the model never saw 40 s
    # utterances, so the reference is the unchunked decode, not the transcript)
    whole = decoder.recognizer.emissions([decoder.read(tmp_path / "long.wav")], chunk_seconds=1000)
    unchunked = decoder.transcripts(["long"], whole, [len(wave) / 16000])[0].text
    assert wer([unchunked], [done[0].text]) <= 0.1


def test_recipe_flow_builds_the_lm_and_uses_its_settings(exp, tmp_path):
    root, model = exp
    recipe = tmp_path / f"{NAME}.toml"
    recipe.write_text(f'name = "{NAME}"\n[lm]\norder = 2\nprune = "0 0"\n'
                      '[decode]\nbeam_size = 8\nalpha = 0.7\nbeta = 0.3\n')
    out = tmp_path / "hyp.jsonl"
    res = run("decode", "--recipe", recipe, "--exp-dir", root / NAME, "--manifest", model.manifest, "--out", out, "--json",
              "--set", "decode.cutoff_top_n=5")
    assert res.exit_code == 0, res.output
    meta = json.loads(out.read_text().splitlines()[0])["_meta"]
    lm_file = root / NAME / "lm" / "lm.bin"
    assert lm_file.is_file() and meta["lm"] == str(lm_file) and meta["lm_info"]["order"] == 2
    assert (meta["beam_size"], meta["alpha"], meta["beta"], meta["cutoff_top_n"]) == (8, 0.7, 0.3, 5)
    assert meta["alpha_beta_from"] == "recipe"


def test_default_checkpoint_is_the_last_trained_one(exp, tmp_path, monkeypatch):
    root, model = exp
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "LAST").write_text(f"{NAME}\n{root / NAME}\n")
    monkeypatch.chdir(tmp_path)
    res = run("decode", rows(model)[0]["audio_filepath"], "--json")
    assert res.exit_code == 0, res.output
    meta = json.loads(res.output.splitlines()[0])["_meta"]
    assert meta["checkpoint"] == str(root / NAME / "checkpoints" / "best.pt")
    assert json.loads(res.output.splitlines()[1])["text"] == rows(model)[0]["text"]


def test_tuning_picks_the_best_pair_on_a_cached_grid(exp, lm_path):
    root, model = exp
    rec, _ = load_recognizer(model.checkpoint)
    decoder = Decoder(rec, DecodeConfig(), load_lm(lm_path))
    r = rows(model)
    waves = [decoder.read(x["audio_filepath"]) for x in r]
    # soften the (over-confident) emissions so that alpha and beta matter
    ems = [(e / 3.0).log_softmax(-1).numpy() for e in rec.emissions(waves)]
    refs = [x["text"] for x in r]
    base = DecodeConfig(beam_size=16)
    pairs = grid((0.0, 2.0), (-2.0, 2.0), 3)
    seen = []
    result = tune(ems, refs, rec.tokenizer, decoder.scorer, base, pairs, lambda t, b: seen.append((t, b)))
    assert len(result.trials) == len(pairs) == len(seen) == 9
    independent = {}
    for a, b in pairs:
        opts = DecodeConfig(16, a, b)
        hyps = [rec.tokenizer.decode(beam_search(e, decoder.scorer, opts)[0].tokens) for e in ems]
        independent[(a, b)] = wer(refs, [" ".join(h.split()) for h in hyps])
    assert {(t.alpha, t.beta): t.wer for t in result.trials} == pytest.approx(independent)
    best = min(independent.values())
    assert result.wer == pytest.approx(best)
    assert independent[(result.alpha, result.beta)] == pytest.approx(best)
    assert len(set(independent.values())) > 1  # the grid did matter
    assert result.oracle_wer <= result.wer
    assert seen[-1][1].wer == pytest.approx(best)


def test_tune_cli_saves_values_that_later_decodes_use(exp, lm_path):
    root, model = exp
    exp_dir = root / NAME
    shutil.rmtree(exp_dir / "cache", ignore_errors=True)
    args = ["decode", "--tune", "--manifest", model.manifest, "--checkpoint", model.checkpoint, "--lm", lm_path,
            "--points", 2, "--alpha-range", "0.2:1.2", "--beta-range", "0:1", "--beam-size", 8]
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert "best LM WER" in res.output and "greedy WER" in res.output and "oracle WER" in res.output
    params = json.loads((exp_dir / "decode_params.json").read_text())
    assert params["lm"] == str(Path(lm_path).resolve()) and params["trials"] == 4
    cached = list((exp_dir / "cache").glob("emissions-*.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert run(*args).exit_code == 0 and cached[0].stat().st_mtime_ns == stamp  # the network ran once
    res = run("decode", rows(model)[0]["audio_filepath"], "--checkpoint", model.checkpoint, "--lm", lm_path, "--json")
    meta = json.loads(res.output.splitlines()[0])["_meta"]
    assert (meta["alpha"], meta["beta"]) == (params["alpha"], params["beta"])
    assert meta["alpha_beta_from"].startswith("tuned")
    # tuned values belong to their LM: another LM does not pick them up
    res = run("decode", rows(model)[0]["audio_filepath"], "--checkpoint", model.checkpoint, "--no-lm", "--json")
    assert json.loads(res.output.splitlines()[0])["_meta"]["alpha_beta_from"] != "tuned"
    (exp_dir / "decode_params.json").unlink()
