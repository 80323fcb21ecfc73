"""The core path end to end on audio the test makes itself (the synthetic espeak-ng corpus of the
`synth` extra), so that a fresh clone without real recordings still runs it: prepare, train a few
steps, a kill -9 mid-run and the resume, decode greedily and with the recipe's KenLM LM (built
by lmplz), score, align. Tiny sizes: about half a minute on 2 cores."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ds2cli.cli import main

REPO = Path(__file__).resolve().parents[1]
SETTINGS = [
    "data.options={num_train = 48, num_dev = 6, num_test = 8}", "data.stats_utterances=20", "data.jobs=1",
    'model.conv=[{channels = 32, kernel = [1, 11], stride = [1, 3]}]', "model.rnn_layers=1",
    "model.rnn_hidden=48", "train.epochs=3", "train.max_batch_seconds=12.0", "train.save_every=2",
    "train.num_workers=0", "train.threads=1", "train.log_every=1", "train.dev_max_utterances=6",
    "lm.order=2", 'lm.prune="0 0"', "decode.beam_size=8",
]


def train_command(exp: Path) -> list[str]:
    sets = [x for s in SETTINGS for x in ("--set", s)]
    return [sys.executable, "-m", "ds2cli", "train", "--recipe", "tiny", "--exp-dir", str(exp), "--quiet", *sets]


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Prepared and trained through `ds2cli train` in a subprocess, killed with SIGKILL after its
    first mid-epoch checkpoint and resumed to the end."""
    exp = tmp_path_factory.mktemp("core") / "tiny"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(train_command(exp), cwd=exp.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not list((exp / "checkpoints").glob("step-*.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0]  # still training when killed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((exp / "metrics.jsonl").read_text().splitlines()[-1]).get("step", 0)
    resumed = subprocess.run(train_command(exp), cwd=exp.parent, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return exp, killed_at, resumed.stdout + resumed.stderr


def test_prepared_trained_and_resumed_after_a_kill(trained):
    exp, killed_at, output = trained
    assert "resumed from" in output
    for name in ("train", "dev", "test"):
        assert (exp / "manifests" / f"{name}.jsonl").is_file()
    report = json.loads((exp / "train_report.json").read_text())
    assert report["epochs"] == 3 and report["steps"] > killed_at
    steps = [m["step"] for m in map(json.loads, (exp / "metrics.jsonl").read_text().splitlines())
             if "loss" in m and m.get("type") != "epoch"]
    assert steps == sorted(set(steps))  # the resumed run continued, it did not repeat steps
    assert (exp / "checkpoints" / "best.pt").is_file()


def test_decode_greedy_and_with_kenlm_then_score_and_align(trained, tmp_path):
    exp, _, _ = trained
    test_set = exp / "manifests" / "test.jsonl"
    outputs = {}
    for method in ("greedy", "beam"):
        out = tmp_path / f"{method}.jsonl"
        res = run("decode", "--recipe", "tiny", "--exp-dir", exp, "--method", method, "--manifest", test_set,
                  "--out", out, "--json", "--quiet", *[x for s in SETTINGS for x in ("--set", s)])
        meta = json.loads(out.read_text().splitlines()[0])["_meta"]
        assert meta["method"] == method
        rows = [json.loads(line) for line in out.read_text().splitlines()[1:]]
        assert len(rows) == 8
        printed = float(res.stderr.split("WER ")[1].split("%")[0])
        scored = json.loads(run("score", test_set, out, "--json").stdout)
        assert printed == pytest.approx(100 * scored["wer"]["rate"], abs=0.005)
        outputs[method] = meta
    assert Path(outputs["beam"]["lm"]).resolve() == (exp / "lm" / "lm.bin").resolve()
    assert outputs["beam"]["lm_info"]["order"] == 2
    res = run("align", test_set, "--exp-dir", exp, "--out", tmp_path / "align", "--json")
    summary = json.loads(res.stdout)
    assert summary["utterances"] == 8 and summary["aligned"] >= 1
    words = [json.loads(line) for line in (tmp_path / "align" / "alignments.jsonl").read_text().splitlines()]
    assert words and all(w["end"] >= w["start"] for row in words for w in row.get("words", []))
