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


def write_wav(path: Path, samples: np.ndarray, subtype: str | None = "PCM_16") -> Path:
    """Write audio in the format the suffix names (WAV, FLAC, OGG Vorbis)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, SR, subtype=subtype if path.suffix == ".wav" else None)
    return path


def truncate_wav(path: Path, keep_bytes: int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])
    return path


def make_exp(exp: Path, n: int = 6, audio_dir: Path | None = None) -> tuple[Path, list[dict]]:
    """A prepared experiment of `n` short generated utterances (train) and 2 (dev), their audio
    in exp/audio or `audio_dir`."""
    from ds2cli.features import FeatureConfig, stats_from_manifest
    from ds2cli.fileio import write_json, write_text
    from ds2cli.manifest import write_manifest
    from ds2cli.text import CharTokenizer

    audio = audio_dir or exp / "audio"
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
    (["lm", "build", "{text}", "--order", "12", "--out", "{tmp}/lm"], ["--order 12", "[1, 6]"]),
    (["lm", "build", "{text}", "--prune", "0 x", "--out", "{tmp}/lm"], ["prune"]),
    (["decode", "{wav}", "--checkpoint", "{ckpt}", "--alpha", "nan"], ["alpha"]),
    (["decode", "{wav}", "--checkpoint", "{ckpt}", "--beta", "inf"], ["beta"]),
    # class 6: the message says what is wrong (not "damaged checkpoint", "no such file", "System error.")
    (["decode", "{wav}", "--checkpoint", "{ckpt}", "--device", "banana"], ["--device", "banana"]),
    pytest.param(["decode", "{wav}", "--checkpoint", "{ckpt}", "--device", "cuda"], ["cuda", "no GPU"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
    (["decode", "/dev/zero", "--checkpoint", "{ckpt}"], ["/dev/zero", "not a regular file"]),
    (["decode", "{tmp}", "--checkpoint", "{ckpt}"], ["is a directory"]),
    (["decode", "{truncated}", "--checkpoint", "{ckpt}"], ["truncated.wav", "truncated audio"]),
    (["decode", "{truncated_ogg}", "--checkpoint", "{ckpt}"], ["truncated.ogg", "truncated audio"]),
    (["decode", "{truncated_flac}", "--checkpoint", "{ckpt}"], ["truncated.flac", "unreadable audio"]),
    pytest.param(["decode", "{unreadable}", "--checkpoint", "{ckpt}"], ["unreadable.wav", "permission denied"],
                 marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")),
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
    truncated = truncate_wav(write_wav(tmp_path / "truncated.wav", tone(2.0)), 20000)
    unreadable = write_wav(tmp_path / "unreadable.wav", tone(0.5))
    unreadable.chmod(0)
    cut = {}
    for ext in ("ogg", "flac"):  # the last 10 bytes missing
        path = write_wav(tmp_path / f"truncated.{ext}", tone(2.0))
        cut[f"truncated_{ext}"] = truncate_wav(path, path.stat().st_size - 10)
    lmrecipe = tmp_path / "lm-recipe.toml"
    lmrecipe.write_text('name = "lm-recipe"\n[lm]\norder = 2\n')
    return [a.format(tmp=tmp_path, text=text, wav=wav, ckpt=ckpt, truncated=truncated, unreadable=unreadable,
                     lmrecipe=lmrecipe, **cut) for a in args]


@pytest.mark.parametrize("args,words", BAD_OPTIONS)
def test_bad_option_is_one_line_naming_it(tmp_path, tiny_checkpoint, args, words):
    result = run_cli(fill(args, tmp_path, tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, *words)


# ---------------------------------------------------------------- helpers for the output classes


def ds2cli_process(args: list, cwd: Path, **kwargs):
    """`python -m ds2cli ARGS` as a separate process, with this checkout first on the path."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ds2cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def output_cases(tmp_path: Path, ckpt: Path, out: Path) -> dict[str, tuple[list, Path]]:
    """Every command that writes, each writing under `out`: name -> (arguments, the file or
    folder its error line must name)."""
    text = tmp_path / "text.txt"
    text.write_text("a b\nb a\na a b\n")
    wav = write_wav(tmp_path / "one.wav", tone(0.5))
    exp, _ = make_exp(tmp_path / "exp", n=2)
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text(json.dumps({"id": "u0", "text": "ab"}) + "\n")
    corpus = make_generic_corpus(tmp_path / "corpus", n=3)
    recipe = tmp_path / "generic.toml"
    recipe.write_text(RECIPE.replace('corpus = "arctic"', 'corpus = "generic"\noptions = {dev_fraction = 0.0, '
                                     'test_fraction = 0.0}'), encoding="utf-8")
    manifest = exp / "manifests" / "train.jsonl"
    return {
        "decode --out": (["decode", "--manifest", manifest, "--checkpoint", ckpt, "--out", out / "hyp.jsonl"],
                         out / "hyp.jsonl"),
        "decode FILE --out": (["decode", wav, "--checkpoint", ckpt, "--out", out / "one.jsonl"], out / "one.jsonl"),
        "score --out": (["score", hyp, manifest, "--out", out / "score.json"], out / "score.json"),
        "lm build --out": (["lm", "build", text, "--out", out / "lm"], out / "lm"),
        "ntm --out": (["ntm", "copy", "--steps", "2", "--checkpoint-every", "1", "--eval-len", "2",
                       "--eval-sequences", "1", "--out", out / "ntm"], out / "ntm"),
        "prepare": (["prepare", "generic", corpus, "--exp-dir", out / "prep", "--quiet", "-o", "dev_fraction=0.0",
                     "-o", "test_fraction=0.0"], out / "prep"),
        "augment": (["augment", manifest, "--out-dir", out / "aug", "--quiet"], out / "aug"),
        "train": (["train", "--recipe", recipe, "--data-dir", corpus, "--exp-dir", out / "exp", "--json"], out / "exp"),
    }


OUTPUT_COMMANDS = ["decode --out", "decode FILE --out", "score --out", "lm build --out", "ntm --out", "prepare", "augment", "train"]


# ---------------------------------------------------------------- class 1: an unwritable output

@pytest.mark.parametrize("case", OUTPUT_COMMANDS)
def test_output_under_a_file_is_one_line(tmp_path, tiny_checkpoint, case):
    """A file where the output folder should be (ENOTDIR; unlike chmod, it stops root too)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    args, named = output_cases(tmp_path, tiny_checkpoint, blocker)[case]
    result = run_cli(args, cwd=tmp_path)
    assert_one_line_error(result, str(blocker), "not a directory")
    assert blocker.read_text() == "a file, not a folder\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
@pytest.mark.parametrize("case", ["decode --out", "score --out", "prepare", "train"])
def test_read_only_folder_is_permission_denied(tmp_path, tiny_checkpoint, case):
    locked = tmp_path / "locked"
    locked.mkdir()
    args, named = output_cases(tmp_path, tiny_checkpoint, locked)[case]
    locked.chmod(0o500)
    try:
        result = run_cli(args, cwd=tmp_path)
    finally:
        locked.chmod(0o700)
    assert_one_line_error(result, str(locked), "permission denied")


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs (root only); fill() then takes all its free space."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")

    def fill():
        import errno

        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError) as err:
                while True:
                    os.write(fd, b"\0" * 4096)
            assert err.value.errno == errno.ENOSPC
        finally:
            os.close(fd)

    try:
        yield disk, fill
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_write_to_a_full_disk_keeps_the_last_good_file(full_disk):
    from ds2cli.errors import OutputError
    from ds2cli.fileio import torch_save, write_json

    disk, fill = full_disk
    write_json(disk / "good.json", {"good": True})
    torch_save({"w": torch.ones(3)}, disk / "good.pt")
    fill()
    with pytest.raises(OutputError, match="good.json: cannot write: no space left on device"):
        write_json(disk / "good.json", {"big": "x" * 100_000})
    with pytest.raises(OutputError, match="good.pt: cannot write: no space left on device"):
        torch_save({"w": torch.randn(100_000)}, disk / "good.pt")  # torch's own error would be a RuntimeError
    assert json.loads((disk / "good.json").read_text()) == {"good": True}
    assert torch.equal(torch.load(disk / "good.pt", weights_only=True)["w"], torch.ones(3))
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "good.json", "good.pt"]  # no temporary left


@pytest.mark.parametrize("case", OUTPUT_COMMANDS)
def test_full_disk_is_one_line(tmp_path, tiny_checkpoint, full_disk, case):
    disk, fill = full_disk
    args, named = output_cases(tmp_path, tiny_checkpoint, disk)[case]
    fill()
    result = run_cli(args, cwd=tmp_path)
    assert_one_line_error(result, str(disk), "no space left on device")
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]


def test_training_on_a_full_disk_keeps_the_last_checkpoint(tmp_path, full_disk):
    disk, fill = full_disk
    exp, _ = make_exp(disk / "exp", n=2, audio_dir=tmp_path / "audio")
    recipe = write_recipe(tmp_path / "unit.toml")
    assert_ok(run_cli(["train", "--recipe", recipe, "--exp-dir", exp, "--quiet"]))
    last = exp / "checkpoints" / "last.pt"
    before = last.read_bytes()
    fill()
    result = run_cli(["train", "--recipe", recipe, "--exp-dir", exp, "--json", "--set", "train.epochs=3"])
    assert_one_line_error(result, str(exp), "no space left on device")
    assert last.read_bytes() == before
    from ds2cli.checkpoint import load_checkpoint

    assert load_checkpoint(last)["train_state"]["position"]["epoch"] == 1


# ---------------------------------------------------------------- class 7: two runs on one folder

def wait_for_lock(folder: Path, proc, seconds: float = 120.0) -> None:
    """Until `proc` holds the folder's lock (its pid is in the lock file)."""
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        lock = folder / ".lock"
        if lock.is_file() and lock.read_text().split(" ")[0] == str(proc.pid):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError(f"{proc.pid} never took {folder}'s lock")


def test_two_trainings_at_once_the_second_refused_and_a_killed_one_never_blocks(tmp_path):
    import signal

    exp, _ = make_exp(tmp_path / "exp", n=4)
    recipe = write_recipe(tmp_path / "unit.toml", "").read_text().replace("epochs = 1", "epochs = 10000")
    (tmp_path / "long.toml").write_text(recipe)
    args = ["train", "--recipe", tmp_path / "long.toml", "--exp-dir", exp, "--quiet"]
    first = ds2cli_process(args, tmp_path)
    try:
        wait_for_lock(exp, first)
        second = ds2cli_process(args, tmp_path)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 1, (out, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert str(exp) in lines[0] and "another ds2cli run" in lines[0] and f"pid {first.pid}" in lines[0]
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # the lock file is still there, with the dead run's pid: it must not block
    assert (exp / ".lock").read_text().startswith(f"{first.pid} ")
    result = run_cli(["train", "--recipe", write_recipe(tmp_path / "unit.toml"), "--exp-dir", exp, "--json",
                      "--no-resume"])
    assert_ok(result)
    steps = [json.loads(line)["step"] for line in (exp / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == sorted(set(steps))  # one run's rows, no step twice


# the commands that write into a folder they own (align too: tests/test_align.py runs it)
LOCKED_COMMANDS = ["prepare", "augment", "train", "lm build --out", "ntm --out"]


@pytest.mark.parametrize("case", LOCKED_COMMANDS)
def test_a_folder_another_process_holds_is_one_line(tmp_path, tiny_checkpoint, case):
    busy = tmp_path / "busy"
    args, folder = output_cases(tmp_path, tiny_checkpoint, busy)[case]
    import subprocess
    import sys

    code = ("import sys, time; from ds2cli.lock import folder_lock\n"
            "with folder_lock(sys.argv[1], 'test'):\n    print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_cli(args, cwd=tmp_path)
        line = assert_one_line_error(result, str(folder), "another ds2cli run", f"pid {holder.pid}")
        assert "ds2cli test" in line
    finally:
        holder.kill()
        holder.communicate()
    assert_ok(run_cli(args, cwd=tmp_path))  # and once it is gone, the command runs


# ---------------------------------------------------------------- class 8: modes and leftovers

@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    exp, _ = make_exp(tmp_path / "exp", n=2)
    old = os.umask(umask)
    try:
        assert_ok(run_cli(["train", "--recipe", write_recipe(tmp_path / "unit.toml"), "--exp-dir", exp, "--json"]))
        corpus = make_generic_corpus(tmp_path / "corpus", n=3)
        assert_ok(run_cli(["prepare", "generic", corpus, "--exp-dir", tmp_path / "prep",
                           "--quiet", "-o", "dev_fraction=0.0", "-o", "test_fraction=0.0"]))
    finally:
        os.umask(old)
    written = [exp / "checkpoints" / "last.pt", exp / "checkpoints" / "best.pt", exp / "train_report.json",
               tmp_path / "prep" / "manifests" / "train.jsonl", tmp_path / "prep" / "tokenizer.json"]
    for path in written:
        assert path.stat().st_mode & 0o777 == mode, (path, oct(path.stat().st_mode))


def test_a_rewritten_file_keeps_its_mode(tmp_path):
    from ds2cli.fileio import write_json

    path = tmp_path / "shared.json"
    write_json(path, {"v": 1})
    path.chmod(0o640)
    write_json(path, {"v": 2})
    assert path.stat().st_mode & 0o777 == 0o640 and json.loads(path.read_text()) == {"v": 2}


def test_temporary_files_of_a_killed_run_are_removed_by_the_next(tmp_path):
    exp, _ = make_exp(tmp_path / "exp", n=2)
    out = tmp_path / "aug"
    stale = [out / "audio" / ".u0-aug0.wav.k3j_x9q2.tmp", out / ".manifest.jsonl.a1b2c3d4.tmp"]
    kept = [out / "audio" / "notes.tmp", out / "audio" / ".hidden"]  # not atomic_path's: left alone
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    result = run_cli(["augment", exp / "manifests" / "train.jsonl", "--out-dir", out, "--quiet"])
    assert_ok(result)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert len(list((out / "audio").glob("*.wav"))) == 2

    ckpt_tmp = exp / "checkpoints" / ".last.pt.zz99yy88.tmp"
    ckpt_tmp.parent.mkdir(parents=True)
    ckpt_tmp.write_bytes(b"half a checkpoint")
    assert_ok(run_cli(["train", "--recipe", write_recipe(tmp_path / "unit.toml"), "--exp-dir", exp, "--json"]))
    assert not ckpt_tmp.exists()
    assert not [p for p in exp.rglob("*.tmp")]


def test_an_offset_past_the_end_says_so_and_the_good_rows_are_decoded(tmp_path, tiny_checkpoint):
    wav = write_wav(tmp_path / "one.wav", tone(0.5))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [
        {"audio_filepath": str(wav), "duration": 0.5, "offset": 50.0, "text": "ab", "id": "late"},
        {"audio_filepath": str(wav), "duration": 0.5, "text": "ab", "id": "good"}]))
    result = run_cli(["decode", "--manifest", manifest, "--checkpoint", tiny_checkpoint, "--out", tmp_path / "h.jsonl"])
    assert_ok(result)
    assert "late: " in result.stderr and "offset 50 s is past the end of the audio (0.50 s)" in result.stderr
    assert "decoded 1 of 2" in result.stderr
    assert [json.loads(line)["id"] for line in (tmp_path / "h.jsonl").read_text().splitlines()] == ["good"]


# ---------------------------------------------------------------- class 6: train checks cheap things first

# (arguments or extra recipe text, words of the error line); each must fail before the corpus is prepared
BEFORE_PREPARATION = [
    pytest.param(["--device", "cuda"], ["cuda", "no GPU"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
    (["--device", "banana"], ["--device", "banana"]),
    (["--set", 'train.noise_dir="no-noise-here"'], ["no-noise-here", "noise folder not found"]),
    (["--set", 'train.init_from="no-such.pt"'], ["no-such.pt", "no such checkpoint"]),
    (["--set", 'train.pool=[{manifest = "no-such.jsonl", weight = 1.0}]'], ["no-such.jsonl", "train.pool"]),
    ("[[augment]]\ntype = \"echo\"\n", ["[[augment]]", "echo"]),
    (["--set", "train=5"], ["--set", "train=5"]),
]


@pytest.mark.parametrize("args,words", BEFORE_PREPARATION)
def test_train_checks_cheap_things_before_preparing(tmp_path, args, words):
    corpus = make_generic_corpus(tmp_path / "corpus", n=3)
    recipe = tmp_path / "generic.toml"
    extra = args if isinstance(args, str) else ""
    recipe.write_text(RECIPE.replace('corpus = "arctic"', 'corpus = "generic"') + extra, encoding="utf-8")
    exp = tmp_path / "exp"
    result = run_cli(["train", "--recipe", recipe, "--data-dir", corpus, "--exp-dir", exp, "--json"]
                     + ([] if isinstance(args, str) else args), cwd=tmp_path)
    assert_one_line_error(result, *words)
    assert not (exp / "manifests").exists()  # nothing was prepared


# ---------------------------------------------------------------- resuming what cannot be resumed

def _other_alphabet(exp: Path, last: Path):
    from ds2cli.fileio import write_json
    from ds2cli.text import CharTokenizer

    write_json(exp / "tokenizer.json", CharTokenizer(["a", "b", " ", "c"]).to_dict())


def _no_train_state(exp: Path, last: Path):
    from ds2cli.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(last)
    ckpt["train_state"] = None  # as `ds2cli average` writes
    save_checkpoint(last, ckpt)


def _other_optimizer(exp: Path, last: Path):
    from ds2cli.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(last)
    ckpt["train_state"]["optimizer"] = {"state": {}, "param_groups": []}
    save_checkpoint(last, ckpt)


BAD_RESUMES = [
    ("another alphabet", _other_alphabet, ["last.pt", "alphabet differs", "tokenizer.json", "--no-resume"]),
    ("no training state", _no_train_state, ["last.pt", "no training state", "--no-resume"]),
    ("an optimiser state that does not fit", _other_optimizer, ["last.pt", "does not fit", "--no-resume"]),
]


@pytest.mark.parametrize("name,spoil,words", BAD_RESUMES, ids=[c[0] for c in BAD_RESUMES])
def test_a_checkpoint_that_cannot_be_resumed_is_one_line(tmp_path, name, spoil, words):
    exp, _ = make_exp(tmp_path / "exp", n=2)
    recipe = write_recipe(tmp_path / "unit.toml")
    assert_ok(run_cli(["train", "--recipe", recipe, "--exp-dir", exp, "--json"]))
    spoil(exp, exp / "checkpoints" / "last.pt")
    result = run_cli(["train", "--recipe", recipe, "--exp-dir", exp, "--json", "--set", "train.epochs=2"])
    assert_one_line_error(result, *words)
    assert_ok(run_cli(["train", "--recipe", recipe, "--exp-dir", exp, "--json", "--no-resume"]))


def test_a_read_only_folder_needs_no_lock_to_be_read(tmp_path):
    """A built LM on a read-only mount is reused (lm build writes nothing, so it takes no lock)."""
    import subprocess

    text = tmp_path / "text.txt"
    text.write_text("a b\nb a\na a b\n")
    assert_ok(run_cli(["lm", "build", text, "--out", tmp_path / "lm"]))
    if os.geteuid() != 0:
        (tmp_path / "lm").chmod(0o500)
    elif subprocess.run(["mount", "--bind", "-o", "ro", str(tmp_path / "lm"), str(tmp_path / "lm")],
                        capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only folder here")
    try:
        result = run_cli(["lm", "build", text, "--out", tmp_path / "lm"])
        assert_ok(result)
        assert "already up to date" in result.output
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(tmp_path / "lm")], check=False)
        else:
            (tmp_path / "lm").chmod(0o700)


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


def test_a_command_that_fails_before_writing_leaves_no_folder(tmp_path):
    result = run_cli(["lm", "build", tmp_path / "no-such.txt", "--out", tmp_path / "lm"])
    assert_one_line_error(result, "no-such.txt")
    assert not (tmp_path / "lm").exists()
