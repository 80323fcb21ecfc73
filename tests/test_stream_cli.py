"""`ds2cli stream` as a user runs it: real processes, a checkpoint written by the test, real
recordings from ../shared/data (skipped without them)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ds2cli.audio import write_audio
from ds2cli.checkpoint import build_checkpoint, save_checkpoint
from test_stream import RATE, TOK, make_audio, random_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(*args, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "ds2cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    if check and proc.returncode:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def save(rec, path: Path) -> Path:
    save_checkpoint(path, build_checkpoint(rec.model, TOK, rec.feature_config, rec.feature_stats,
                                           recipe={"name": "stream-test"}))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream_cli")
    ckpt = save(random_model("1d", "gru", 3, seed=5, output_scale=30.0), d / "checkpoints" / "best.pt")
    clips = []
    for i, seconds in enumerate((1.2, 0.7)):
        clips.append(d / f"clip{i}.wav")
        write_audio(clips[-1], make_audio(seconds, seed=i), RATE)
    return d, ckpt, clips


def decode_texts(ckpt, files, *extra) -> list[str]:
    out = run("decode", "--checkpoint", ckpt, "--no-lm", "--json", *extra, *files).stdout.splitlines()
    return [json.loads(line)["text"] for line in out[1:]]


def test_stream_prints_the_finals_of_decode(setup):
    d, ckpt, clips = setup
    want = decode_texts(ckpt, clips)
    proc = run("stream", "--checkpoint", ckpt, "--no-lm", *clips)
    assert proc.stdout.splitlines() == [f"{c}\t{t}" for c, t in zip(clips, want)]
    assert "model latency 170 ms" in proc.stderr
    events = [json.loads(line) for line in run("stream", "--checkpoint", ckpt, "--no-lm", "--json",
                                                "--chunk-ms", 10, clips[0]).stdout.splitlines()]
    assert {e["type"] for e in events} == {"partial", "final"} and events[-1]["type"] == "final"
    assert events[-1]["text"] == want[0] and events[-1]["words"]


def test_realtime_paces_the_audio(setup):
    d, ckpt, clips = setup
    import time

    start = time.perf_counter()
    run("stream", "--checkpoint", ckpt, "--no-lm", "--realtime", "-q", clips[1])
    assert time.perf_counter() - start >= 0.7 - 0.16  # the last chunk is fed 0.56 s after the first


def test_bad_inputs_give_one_line_errors(setup, tmp_path):
    d, ckpt, clips = setup
    (tmp_path / "bad.wav").write_bytes(b"RIFF junk")
    proc = run("stream", "--checkpoint", ckpt, "--no-lm", tmp_path / "bad.wav", clips[1], check=False)
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 1  # the good file is still done
    assert "bad.wav" in proc.stderr and "Traceback" not in proc.stderr
    bidi = save(random_model(bidirectional=True, lookahead=0), tmp_path / "bidi.pt")
    proc = run("stream", "--checkpoint", bidi, clips[0], check=False)
    assert proc.returncode == 1 and "bidirectional" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_real_recordings_stream_like_decode(setup, arctic_dir):
    """A FLAC (arctic-cathy) and an Ogg/Opus (speechocean762) recording, any sample rate: the
    streaming path reads them and gives decode's transcript."""
    d, ckpt, _ = setup
    ocean = arctic_dir.parent / "speechocean762" / "WAVE"
    if not ocean.is_dir():
        pytest.skip(f"{ocean} is absent")
    files = [sorted(arctic_dir.glob("*.flac"))[0], sorted(ocean.glob("*/*.ogg"))[0]]
    want = decode_texts(ckpt, files)
    got = [json.loads(line) for line in run("stream", "--checkpoint", ckpt, "--no-lm", "--json",
                                             *files).stdout.splitlines()]
    finals = [[e for e in got if e["type"] == "final" and e["file"] == str(f)] for f in files]
    assert [" ".join(x["text"] for x in fs if x["text"]) for fs in finals] == [" ".join(w.split()) for w in want]
    assert all(len(fs) >= 1 for fs in finals)
