"""Training in separate processes: a run killed with SIGKILL mid-epoch and resumed ends with the
same weights as an uninterrupted run; two gloo workers (`ds2cli train --nproc 2`) follow the same
loss trajectory as one process with the same global batch, batch-norm statistics included.
(In-process, exact resume is also
covered by test_train.py::test_resume_continues_where_it_stopped.)"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_train import make_exp, step_losses

REPO = Path(__file__).resolve().parents[1]


def write_recipe(path: Path, train: str, model: str = "") -> Path:
    path.write_text(
        'name = "proc"\n[data]\ncorpus = "arctic"\n'
        '[model]\nconv_type = "1d"\nconv = [{channels = 32, kernel = [1, 5], stride = [1, 2]}]\n'
        f'rnn_layers = 1\nrnn_hidden = 32\n{model}'
        '[train]\noptimizer = "adamw"\nlr = 3e-3\nnum_workers = 0\nthreads = 1\nlog_every = 1\n'
        'validate = false\n' + train)
    return path


def ds2cli(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "ds2cli", "train", "--quiet", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def weights(exp: Path) -> dict:
    return torch.load(exp / "checkpoints" / "last.pt", weights_only=True)["model_state"]


# four process start-ups: ~25 s idle, ~2 min on a loaded 2-core machine (part of `make test`)
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path, arctic_dir):
    recipe = write_recipe(tmp_path / "r.toml", "epochs = 2\nmax_batch_seconds = 4.0\nsave_every = 2\n")
    a = make_exp(tmp_path / "a", arctic_dir, n_train=12, n_dev=0)
    b = make_exp(tmp_path / "b", arctic_dir, n_train=12, n_dev=0)
    finish(ds2cli("--recipe", str(recipe), "--exp-dir", str(a)))

    proc = ds2cli("--recipe", str(recipe), "--exp-dir", str(b))
    deadline = time.time() + 240
    # wait for the second mid-epoch checkpoint of the first epoch, then kill without warning
    while not (b / "checkpoints" / "step-4.pt").exists():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (b / "train_report.json").exists()  # it really stopped before the end
    state = torch.load(b / "checkpoints" / "last.pt", weights_only=True)["train_state"]["position"]
    assert state["step"] >= 4 and state["epoch"] <= 1

    out = finish(ds2cli("--recipe", str(recipe), "--exp-dir", str(b)))
    assert "resumed from" in out
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert step_losses(a) == step_losses(b)


def test_two_gloo_workers_match_one_process(tmp_path, arctic_dir):
    """Same global batch (4 utterances) in 1 process or 2 x 2: the same losses step by step.
    Batch norm is on: the workers share its statistics (sync_batch_norm), so they see the batch
    the single process sees."""
    common = "epochs = 2\nmax_batch_seconds = 100.0\n"
    one = write_recipe(tmp_path / "one.toml", common + "max_batch_size = 4\n", "batch_norm = true\n")
    two = write_recipe(tmp_path / "two.toml", common + "max_batch_size = 2\n", "batch_norm = true\n")
    a = make_exp(tmp_path / "a", arctic_dir, n_train=12, n_dev=0)
    b = make_exp(tmp_path / "b", arctic_dir, n_train=12, n_dev=0)
    single = ds2cli("--recipe", str(one), "--exp-dir", str(a), "--device", "cpu")
    finish(single)
    out = finish(ds2cli("--recipe", str(two), "--exp-dir", str(b), "--nproc", "2", "--device", "cpu", "--json"))
    report = json.loads((b / "train_report.json").read_text())
    assert report["world_size"] == 2, out
    la, lb = step_losses(a), step_losses(b)
    assert len(la) == len(lb) == 6
    assert la[0] == pytest.approx(lb[0], rel=1e-5)
    assert lb == pytest.approx(la, rel=2e-3)
    assert la[-1] < la[0]
    wa, wb = weights(a), weights(b)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-3) for k in wa)
