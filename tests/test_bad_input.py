"""Bad input, as a clumsy or hostile user gives it, to the real commands: every case ends with exit
code 1 or 2 and exactly one line on stderr naming the file or option (never a traceback), or, for
batch jobs, the good items processed and the bad ones skipped, counted and reported.

Each table row is one case; a new case is one more line."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ds2cli.cli import main

torch.set_num_threads(1)
SR = 16000
WORDS = ["ab", "ba", "abba", "a b"]


# ---------------------------------------------------------------- helpers

def run_cli(args: list[str], cwd: Path | None = None):
    """Run `ds2cli ARGS` in-process; returns the click Result (stdout and stderr apart)."""
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)


def assert_one_line_error(result, *names: str, codes=(1, 2)):
    """Exit 1 or 2, no traceback, exactly one line on stderr that names each of `names`."""
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"uncaught {type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in result.output + result.stderr
    assert result.exit_code in codes, (result.exit_code, result.stderr, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.exit_code == 2:  # click's usage errors print the usage first
        lines = [line for line in lines if line.startswith("Error")]
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name.lower() in lines[0].lower(), (name, lines[0])
    return lines[0]


def assert_ok(result):
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"uncaught {type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in result.output + result.stderr
    assert result.exit_code == 0, result.stderr + result.output


def tone(seconds: float, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, SR, subtype=subtype)
    return path


def truncate_wav(path: Path, keep_bytes: int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])
    return path


def make_exp(exp: Path, n: int = 6) -> tuple[Path, list[dict]]:
    """A prepared experiment of `n` short generated utterances (train) and 2 (dev)."""
    from ds2cli.features import FeatureConfig, stats_from_manifest
    from ds2cli.fileio import write_json, write_text
    from ds2cli.manifest import write_manifest
    from ds2cli.text import CharTokenizer

    audio = exp / "audio"
    rows = []
    for i in range(n + 2):
        path = write_wav(audio / f"u{i}.wav", tone(0.6 + 0.1 * (i % 3), 300 + 50 * i, i))
        rows.append({"audio_filepath": str(path), "duration": round(0.6 + 0.1 * (i % 3), 4),
                     "text": WORDS[i % len(WORDS)], "id": f"u{i}"})
    write_manifest(exp / "manifests" / "train.jsonl", rows[:n])
    write_manifest(exp / "manifests" / "dev.jsonl", rows[n:])
    write_json(exp / "tokenizer.json", CharTokenizer(["a", "b", " "]).to_dict())
    write_json(exp / "feature_stats.json", stats_from_manifest(rows[:n], FeatureConfig(), 4).to_dict())
    write_text(exp / ".prepared", "")
    return exp, rows[:n]


RECIPE = """
name = "unit"
[data]
corpus = "arctic"
[model]
conv_type = "1d"
conv = [{channels = 8, kernel = [1, 5], stride = [1, 2]}]
rnn_layers = 1
rnn_hidden = 8
[train]
optimizer = "adamw"
lr = 0.003
epochs = 1
max_batch_seconds = 2.0
num_workers = 0
threads = 1
log_every = 1
device = "cpu"
"""


def write_recipe(path: Path, extra: str = "") -> Path:
    path.write_text(RECIPE + extra, encoding="utf-8")
    return path


def rewrite_rows(manifest: Path, change) -> None:
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    change(rows)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))


# ---------------------------------------------------------------- class 2: one bad training row

def _missing(rows, exp):
    rows[1]["audio_filepath"] = str(exp / "audio" / "gone.wav")


def _garbage(rows, exp):
    (exp / "audio" / "junk.wav").write_bytes(b"RIFF but not really a wav file" * 10)
    rows[1]["audio_filepath"] = str(exp / "audio" / "junk.wav")


def _nan_audio(rows, exp):
    bad = tone(0.6)
    bad[100] = np.nan
    rows[1]["audio_filepath"] = str(write_wav(exp / "audio" / "nan.wav", bad, "FLOAT"))


def _unknown_char(rows, exp):
    rows[1]["text"] = "abz"


def _nan_duration(rows, exp):
    rows[1]["duration"] = math.nan


def _text_null(rows, exp):
    rows[1]["text"] = None


def _huge_duration(rows, exp):
    rows[1]["duration"] = 1e9


def _wrong_duration(rows, exp):
    rows[1]["duration"] = 30.0


def _offset_word(rows, exp):
    rows[1]["offset"] = "soon"


def _offset_past_end(rows, exp):
    rows[1]["offset"] = 50.0


# (name, how one train row is spoilt, key in train_report.json that counts it)
BAD_TRAIN_ROWS = [
    ("missing audio", _missing, "skipped"),
    ("unreadable audio", _garbage, "skipped"),
    ("NaN samples", _nan_audio, "skipped"),
    ("duration that does not match the audio", _wrong_duration, "skipped"),
    ("offset past the end", _offset_past_end, "skipped"),
    ("character outside the alphabet", _unknown_char, "characters outside the alphabet"),
    ("NaN duration", _nan_duration, "bad manifest row"),
    ("absurd duration", _huge_duration, "bad manifest row"),
    ("text null", _text_null, "bad manifest row"),
    ("offset a word", _offset_word, "bad manifest row"),
]


@pytest.mark.parametrize("name,spoil,counted", BAD_TRAIN_ROWS, ids=[c[0] for c in BAD_TRAIN_ROWS])
def test_one_bad_training_row_is_skipped_and_reported(tmp_path, name, spoil, counted):
    exp, _ = make_exp(tmp_path / "exp")
    rewrite_rows(exp / "manifests" / "train.jsonl", lambda rows: spoil(rows, exp))
    recipe = write_recipe(tmp_path / "unit.toml")
    result = run_cli(["train", "--recipe", recipe, "--exp-dir", exp, "--quiet"])
    assert_ok(result)
    report = json.loads((exp / "train_report.json").read_text())
    if counted == "skipped":
        assert report["skipped_utterances"] == 1
        assert report["train_utterances"] == 6
    else:
        assert report["dropped_utterances"] == {counted: 1}
        assert report["train_utterances"] == 5
    assert report["steps"] >= 1
    assert len(report["skipped_examples"]) == 1
    assert "left out" in result.output  # the summary at the end says so


def test_training_refuses_when_no_row_is_readable(tmp_path):
    exp, _ = make_exp(tmp_path / "exp", n=3)

    def spoil(rows):
        for r in rows:
            r["audio_filepath"] = str(exp / "audio" / "gone.wav")

    rewrite_rows(exp / "manifests" / "train.jsonl", spoil)
    result = run_cli(["train", "--recipe", write_recipe(tmp_path / "unit.toml"), "--exp-dir", exp, "--json"])
    assert_one_line_error(result, "train.jsonl", "none of its 3 utterances")


# ---------------------------------------------------------------- class 3: prepare skips one bad file

def _prep_nan(folder):
    bad = tone(0.5)
    bad[10] = np.nan
    write_wav(folder / "bad.wav", bad, "FLOAT")


def _prep_inf(folder):
    bad = tone(0.5)
    bad[10] = np.inf
    write_wav(folder / "bad.wav", bad, "FLOAT")


def _prep_ten_samples(folder):
    write_wav(folder / "bad.wav", tone(10 / SR))


def _prep_truncated(folder):
    truncate_wav(write_wav(folder / "bad.wav", tone(0.5)), 2000)


def _prep_garbage(folder):
    (folder / "bad.wav").write_bytes(b"\x00" * 300)


# (name, how the bad file is made, the reason prepare_report.json counts it under)
BAD_PREPARE_FILES = [
    ("NaN samples", _prep_nan, "audio contains NaN or infinite samples"),
    ("Inf samples", _prep_inf, "audio contains NaN or infinite samples"),
    ("10 samples", _prep_ten_samples, "audio too short"),
    ("truncated", _prep_truncated, "truncated audio"),
    ("not audio", _prep_garbage, "unreadable audio"),
]


def make_generic_corpus(folder: Path, n: int = 5) -> Path:
    for i in range(n):
        write_wav(folder / f"g{i}.wav", tone(0.5, 300 + 40 * i, i))
        (folder / f"g{i}.txt").write_text(WORDS[i % len(WORDS)])
    return folder


@pytest.mark.parametrize("name,make_bad,reason", BAD_PREPARE_FILES, ids=[c[0] for c in BAD_PREPARE_FILES])
def test_prepare_skips_one_bad_file(tmp_path, name, make_bad, reason):
    corpus = make_generic_corpus(tmp_path / "corpus")
    make_bad(corpus)
    (corpus / "bad.txt").write_text("ab")
    out = tmp_path / "exp"
    result = run_cli(["prepare", "generic", corpus, "--exp-dir", out, "--quiet", "-o", "dev_fraction=0.0",
                      "-o", "test_fraction=0.0"])
    assert_ok(result)
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["skipped"] == {reason: 1}
    assert report["splits"]["train"]["utterances"] == 5
    assert "bad.wav" in result.stderr and "skipped 1" in result.output


# ---------------------------------------------------------------- class 4: wrong types and values

# (--set override or extra recipe text, words the one error line must contain)
BAD_RECIPE_VALUES = [
    (["--set", "train.lr=-1"], ["lr", "> 0", "--set train.lr=-1"]),
    (["--set", "train.lr=nan"], ["lr", "> 0"]),
    (["--set", "train.lr=fast"], ["lr", "a number"]),
    (["--set", 'train.epochs="six"'], ["epochs", "an integer"]),
    (["--set", "model.rnn_hidden=0"], ["rnn_hidden", ">= 1"]),
    (["--set", "model.rnn_hidden=2.5"], ["rnn_hidden", "an integer"]),
    (["--set", "features.window_ms=-20"], ["window_ms", "[1, 1000]"]),
    (["--set", "features.sample_rate=0"], ["sample_rate"]),
    (["--set", "model.conv=[{channels = 8, kernel = [1, -5], stride = [1, 2]}]"], ["kernel", ">= 1"]),
    (["--set", "model.conv=[{channels = 8, size = 3}]"], ["conv", "channels, kernel and stride"]),
    (["--set", "model.conv=3"], ["conv", "a list"]),
    (["--set", "train.momentum=2"], ["momentum", "[0, 1)"]),
    (["--set", "train.sortagrad=1"], ["sortagrad", "true or false"]),
    (["--set", "trian.epochs=3"], ["unknown section", "trian"]),
    (["--set", "train=5"], ["--set", "train=5", "SECTION.KEY=VALUE"]),
    (["--set", "train.epoch=5"], ["unknown key", "epoch"]),
    (["--device", "banana"], ["--device", "banana"]),
    (["--set", "train.device=\"gpu\""], ["device", "cuda:N"]),
]


@pytest.mark.parametrize("args,words", BAD_RECIPE_VALUES, ids=[" ".join(c[0]) for c in BAD_RECIPE_VALUES])
def test_bad_recipe_value_is_one_line_naming_it(tmp_path, args, words):
    exp, _ = make_exp(tmp_path / "exp", n=2)
    result = run_cli(["train", "--recipe", write_recipe(tmp_path / "unit.toml"), "--exp-dir", exp, "--json"] + args)
    assert_one_line_error(result, *words)
    assert not (exp / "checkpoints").exists()


def test_unknown_recipe_section_in_the_file(tmp_path):
    recipe = write_recipe(tmp_path / "unit.toml", "[trian]\nepochs = 3\n")
    result = run_cli(["train", "--recipe", recipe, "--exp-dir", tmp_path / "exp"])
    assert_one_line_error(result, "unit.toml", "unknown section", "trian")


# (command line after `ds2cli`, words the error line must contain); {ckpt} is a tiny checkpoint
BAD_OPTIONS = [
    (["ntm", "copy", "--steps", "0"], ["steps", ">= 1"]),
    (["ntm", "copy", "--lr", "nan"], ["lr", "> 0"]),
    (["lm", "build", "{text}", "--order", "12", "--out", "{tmp}/lm"], ["order", "[1, 6]"]),
    (["lm", "build", "{text}", "--prune", "0 x", "--out", "{tmp}/lm"], ["prune"]),
    (["decode", "{wav}", "--checkpoint", "{ckpt}", "--alpha", "nan"], ["alpha"]),
    (["decode", "{wav}", "--checkpoint", "{ckpt}", "--beta", "inf"], ["beta"]),
    (["train", "--recipe", "digits", "--exp-dir", "{tmp}/e"], ["recipe digits", "--data-dir"]),
    (["prepare", "arctic", "--exp-dir", "{tmp}/e"], ["arctic", "folder"]),
    (["decode", "{wav}", "--exp-dir", "{tmp}/none"], ["checkpoint"]),
    (["align", "{tmp}/m.jsonl", "--exp-dir", "{tmp}/none"], ["none/checkpoints/best.pt", "no such checkpoint"]),
    # a recipe that names an LM which is not there: an error, never a silent greedy decode
    (["decode", "{wav}", "--checkpoint", "{ckpt}", "--recipe", "{lmrecipe}", "--exp-dir", "{tmp}/elsewhere"],
     ["lm.bin", "missing", "--no-lm"]),
    (["decode", "{wav}", "--checkpoint", "{ckpt}", "--set", "decode.beam_size=0"], ["--set", "beam_size", ">= 1"]),
    (["decode", "{wav}", "--checkpoint", "{ckpt}", "--set", "decode.beam=5"], ["--set", "unknown key", "beam"]),
]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-weight ds2cli checkpoint (nothing here needs a trained model)."""
    from ds2cli.checkpoint import build_checkpoint, save_checkpoint
    from ds2cli.features import FeatureConfig, FeatureStats
    from ds2cli.model import ConvLayer, DeepSpeech2, ModelConfig
    from ds2cli.text import CharTokenizer

    torch.manual_seed(0)
    tok = CharTokenizer(["a", "b", " "])
    cfg = ModelConfig(conv_type="1d", conv=[ConvLayer(8, (1, 5), (1, 2))], rnn_layers=1, rnn_hidden=8)
    path = tmp_path_factory.mktemp("ckpt") / "exp" / "checkpoints" / "best.pt"
    fc = FeatureConfig()
    save_checkpoint(path, build_checkpoint(DeepSpeech2(cfg, len(tok)), tok, fc,
                                           FeatureStats([0.0] * fc.n_bins, [1.0] * fc.n_bins),
                                           recipe={"name": "tiny-test"}))
    return path


def fill(args: list[str], tmp_path: Path, ckpt: Path) -> list[str]:
    text = tmp_path / "text.txt"
    text.write_text("a b\nb a\na a b\n")
    wav = write_wav(tmp_path / "one.wav", tone(0.5))
    lmrecipe = tmp_path / "lm-recipe.toml"
    lmrecipe.write_text('name = "lm-recipe"\n[lm]\norder = 2\n')
    return [a.format(tmp=tmp_path, text=text, wav=wav, ckpt=ckpt, lmrecipe=lmrecipe) for a in args]


@pytest.mark.parametrize("args,words", BAD_OPTIONS, ids=[" ".join(c[0][:3]) for c in BAD_OPTIONS])
def test_bad_option_is_one_line_naming_it(tmp_path, tiny_checkpoint, args, words):
    result = run_cli(fill(args, tmp_path, tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, *words)


def test_decode_settings_without_a_recipe_and_one_wer(tmp_path, tiny_checkpoint):
    """--set reaches the checkpoint's own recipe; the WER `decode` prints is `score`'s on its output
    (a skipped row counts as an empty hypothesis in both); greedy needs no LM."""
    rows = [{"audio_filepath": str(write_wav(tmp_path / f"u{i}.wav", tone(0.6 + 0.1 * i, 300 + 90 * i, i))),
             "duration": 0.6 + 0.1 * i, "text": text, "id": f"u{i}"} for i, text in enumerate(WORDS)]
    rows.append({"audio_filepath": str(tmp_path / "gone.wav"), "duration": 1.0, "text": "ab ba", "id": "gone"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "hyp.jsonl"
    result = run_cli(["decode", "--manifest", manifest, "--checkpoint", tiny_checkpoint, "--out", out, "--json",
                      "--set", "decode.beam_size=3", "--set", "decode.cutoff_top_n=2", "-q"])
    assert_ok(result)
    meta = json.loads(out.read_text().splitlines()[0])["_meta"]
    assert (meta["beam_size"], meta["cutoff_top_n"]) == (3, 2)
    printed = float(result.stderr.split("WER ")[1].split("%")[0])
    assert "1 skipped row(s) scored as empty" in result.stderr
    scored = run_cli(["score", manifest, out, "--json"])
    assert_ok(scored)
    assert printed == pytest.approx(100 * json.loads(scored.stdout)["wer"]["rate"], abs=0.005)
    recipe = tmp_path / "lm-recipe.toml"
    recipe.write_text('name = "lm-recipe"\n[lm]\norder = 2\n')
    greedy = run_cli(["decode", rows[0]["audio_filepath"], "--checkpoint", tiny_checkpoint, "--recipe", recipe,
                      "--exp-dir", tmp_path / "elsewhere", "--method", "greedy"], cwd=tmp_path)
    assert_ok(greedy)
