"""For the server tests: a small random-weight forward-only checkpoint, audio whose frames differ,
and a real `ds2cli serve` process on a free localhost port."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

RATE = 16000


def make_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Chirps and noise bursts between silences (n,) float32: emissions that change often. The
    values are exact int16 samples, so int16 streaming sends exactly this audio."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) * (np.sin(2 * np.pi * 1.7 * t) > -0.3)
    wave += 0.05 * rng.standard_normal(n) * (np.sin(2 * np.pi * 0.9 * t) > 0.5)
    return (np.round(wave * 32768) / 32768).astype(np.float32)


def random_stream_checkpoint(path: Path, seed: int = 0) -> Path:
    """A forward-only DS2 (1D conv, 2 GRU layers of 32, lookahead 2) with random weights whose
    batch-norm statistics come from one pass over real-looking audio, saved as a checkpoint."""
    import torch

    from ds2cli.checkpoint import build_checkpoint, save_checkpoint
    from ds2cli.features import FeatureConfig, FeatureStats, log_spectrogram
    from ds2cli.model import ConvLayer, DeepSpeech2, ModelConfig
    from ds2cli.text import CharTokenizer

    torch.manual_seed(seed)
    tok = CharTokenizer.english()
    cfg = ModelConfig(conv_type="1d", conv=[ConvLayer(32, (1, 5), (1, 2))], rnn_type="gru", rnn_layers=2,
                      rnn_hidden=32, bidirectional=False, lookahead=2, fc_hidden=[])
    model = DeepSpeech2(cfg, len(tok))
    fcfg = FeatureConfig()
    feats = log_spectrogram(torch.from_numpy(make_audio(2.0, seed=99)), fcfg)
    stats = FeatureStats(feats.mean(0).tolist(), feats.std(0).clamp_min(1e-3).tolist())
    for module in model.modules():
        if hasattr(module, "running_mean"):
            module.momentum = 1.0
    x = stats.normalise(feats)[None]
    with torch.no_grad():
        model.train()
        model(x, torch.tensor([x.shape[1]]))
        model.output.weight.mul_(10.0)
    model.eval()
    save_checkpoint(path, build_checkpoint(model, tok, fcfg, stats, recipe={"name": "serve-test"}))
    return path


class ServerProcess:
    """`python -m ds2cli serve ... --port 0` as a subprocess; waits for its listening line."""

    def __init__(self, checkpoint: Path, *args: str, log_path: Path | None = None, timeout: float = 60.0):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "ds2cli", "serve", "--checkpoint", str(checkpoint), "--port", "0",
               "--threads", "1", *args]
        self.log_path = log_path
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"listening on http://([\d.]+):(\d+)", line)
            if found:
                self.host, self.port = found.group(1), int(found.group(2))
                self.url = f"ws://{self.host}:{self.port}/v1/stream"
                self.http = f"http://{self.host}:{self.port}"
                self._drain = threading.Thread(target=self._read_stderr, daemon=True)
                self._drain.start()
                return
        self.proc.kill()
        raise RuntimeError("server did not start:\n" + "".join(self.lines) + self.proc.stderr.read())

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:  # never let a full pipe block the server
            self.lines.append(line)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.http + path, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def health(self) -> dict:
        return json.loads(self.get("/health")[1])

    def terminate(self, timeout: float = 30.0) -> tuple[int, str]:
        """SIGTERM, then wait: (exit code, the rest of stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.join(timeout=5)
        return self.proc.returncode, "".join(self.lines)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.terminate()
