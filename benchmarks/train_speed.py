"""Training speed on this CPU: audio seconds trained per wall second (forward, backward, optimiser
step) and the share of the machine's dense matmul rate that achieves, for the tiny and librispeech
recipes' models; and against deepspeech.pytorch's own DeepSpeech model at the same architecture and
batch (its model class, imported from a checkout outside this repository, timed in the same run).

    python -m benchmarks.train_speed [--peer-dir PEER] [--threads 2]

PEER is a checkout of github.com/SeanNaren/deepspeech.pytorch (env DS_PEER); without it, ds2cli alone.
Its model module imports pytorch_lightning, omegaconf, torchmetrics, Levenshtein and six only for
training plumbing; those are replaced by minimal stand-ins (an nn.Module base class, a config type
lookup, metric stubs), and its config dataclasses (whose module does not import on Python 3.11) by
equivalents with the same fields, so its DeepSpeech class itself runs unchanged."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ds2cli.model import DeepSpeech2, ModelConfig
from benchmarks.paths import stamped

RESULTS = Path(__file__).resolve().parent / "results"
N_BINS = 161
VOCAB = 29  # English characters + blank


def matmul_rate(threads: int, size: int = 1024, seconds: float = 2.0) -> float:
    """Dense fp32 matmul FLOP/s of this machine at `threads` threads (best of a few timed runs)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    best = 0.0
    end = time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        best = max(best, 4 * 2 * size ** 3 / (time.perf_counter() - t))
    return best


def step_flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def timed(step, warmup: int, steps: int) -> float:
    """Median seconds per step."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _targets(batch: int, seconds: float):
    n = int(seconds * 12)  # ~12 characters per second of speech
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, VOCAB, (batch * n,), generator=g), torch.full((batch,), n)


def ours_step(cfg: ModelConfig, batch: int, seconds: float):
    torch.manual_seed(0)
    model = DeepSpeech2(cfg, VOCAB).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    frames = int(seconds * 100) + 1
    x, lengths = torch.randn(batch, frames, N_BINS), torch.full((batch,), frames)
    targets, target_lengths = _targets(batch, seconds)

    def step():
        logits, out_lengths = model(x, lengths)
        loss = F.ctc_loss(logits.log_softmax(-1).transpose(0, 1), targets, out_lengths, target_lengths,
                          reduction="sum", zero_infinity=True)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def load_peer(peer_dir: Path):
    """deepspeech_pytorch.model with its training plumbing replaced by stand-ins."""
    class LightningModule(torch.nn.Module):
        def save_hyperparameters(self, *a, **k):
            pass

    class OmegaConf:
        @staticmethod
        def get_type(obj):
            return type(obj)

    class _Metric:
        def __init__(self, *a, **k):
            pass

    stubs = {
        "pytorch_lightning": types.SimpleNamespace(LightningModule=LightningModule),
        "omegaconf": types.SimpleNamespace(OmegaConf=OmegaConf, MISSING="???"),
        "six": types.SimpleNamespace(moves=types.SimpleNamespace(xrange=range)),
        "six.moves": types.SimpleNamespace(xrange=range),
        "deepspeech_pytorch.validation": types.SimpleNamespace(CharErrorRate=_Metric, WordErrorRate=_Metric),
    }
    for name, module in stubs.items():
        sys.modules.setdefault(name, module)
    sys.path.insert(0, str(peer_dir))
    from deepspeech_pytorch.enums import RNNType

    # its configs/train_config.py does not import on Python 3.11 (a dataclass instance as a field
    # default); the model needs only these four config types from it
    @dataclass
    class SpectConfig:
        sample_rate: int = 16000
        window_size: float = .02
        window_stride: float = .01

    @dataclass
    class BiDirectionalConfig:
        rnn_type: Any = RNNType.lstm
        hidden_size: int = 1024
        hidden_layers: int = 5

    @dataclass
    class UniDirectionalConfig(BiDirectionalConfig):
        lookahead_context: int = 20

    @dataclass
    class AdamConfig:
        learning_rate: float = 1.5e-4

    train_config = types.SimpleNamespace(SpectConfig=SpectConfig, BiDirectionalConfig=BiDirectionalConfig,
                                         UniDirectionalConfig=UniDirectionalConfig, AdamConfig=AdamConfig,
                                         SGDConfig=type("SGDConfig", (), {}), OptimConfig=object)
    sys.modules.setdefault("deepspeech_pytorch.configs.train_config", train_config)
    from deepspeech_pytorch import model as peer_model

    return peer_model, train_config, RNNType


def peer_step(peer, rnn: str, hidden: int, layers: int, batch: int, seconds: float, device: str = "cpu"):
    peer_model, train_config, RNNType = peer
    torch.manual_seed(0)
    labels = ["_"] + list("'abcdefghijklmnopqrstuvwxyz ")
    model_cfg = train_config.BiDirectionalConfig(rnn_type=RNNType[rnn], hidden_size=hidden, hidden_layers=layers)
    model = peer_model.DeepSpeech(labels=labels, model_cfg=model_cfg, precision=32,
                                  optim_cfg=train_config.AdamConfig(), spect_cfg=train_config.SpectConfig())
    model = model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)  # its default optimiser (AdamConfig)
    frames = int(seconds * 100) + 1
    x = torch.randn(batch, 1, N_BINS, frames, device=device)  # its layout: (B, 1, F, T)
    lengths = torch.full((batch,), frames, dtype=torch.int, device=device)
    targets, target_lengths = (t.to(device) for t in _targets(batch, seconds))

    def step():  # its training_step, then the optimiser step Lightning would run
        out, output_sizes, _ = model(x, lengths)
        out = out.transpose(0, 1).log_softmax(-1)
        loss = model.criterion(out, targets, output_sizes, target_lengths)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def peer_architecture(rnn: str, hidden: int, layers: int) -> ModelConfig:
    """Ours at the peer's architecture: its 2D front end, BN RNN layers summed over directions."""
    return ModelConfig(conv_type="2d", conv=[{"channels": 32, "kernel": [41, 11], "stride": [2, 2]},
                                             {"channels": 32, "kernel": [21, 11], "stride": [2, 1]}],
                       rnn_type=rnn, rnn_layers=layers, rnn_hidden=hidden, bidirectional=True)


def measure(name: str, step, audio_seconds: float, rate: float, warmup: int, steps: int) -> dict:
    flops = step_flops(step)
    sec = timed(step, warmup, steps)
    row = {"name": name, "seconds_per_step": round(sec, 4), "audio_s_per_s": round(audio_seconds / sec, 2),
           "gflop_per_step": round(flops / 1e9, 2), "matmul_share": round(flops / sec / rate, 4)}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None):
    from ds2cli.recipe import load_recipe

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-dir", default=os.environ.get("DS_PEER"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--skip-lstm", action="store_true", help="Skip the slow LSTM 5x1024 comparison.")
    ap.add_argument("--out", default=str(RESULTS / "train_speed.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rate = matmul_rate(args.threads)
    print(f"matmul: {rate / 1e9:.1f} GFLOP/s at {args.threads} threads", flush=True)
    result = {"threads": args.threads, "matmul_gflops": round(rate / 1e9, 2), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "recipes": [], "peer": []}

    for recipe, batch, seconds in (("tiny", 16, 3.0), ("librispeech", 2, 4.0)):
        cfg = ModelConfig(**load_recipe(recipe)["model"])
        row = measure(f"{recipe} ({batch} x {seconds:g} s)", ours_step(cfg, batch, seconds), batch * seconds,
                      rate, 1, args.steps if recipe == "tiny" else max(1, args.steps - 1))
        result["recipes"].append({"recipe": recipe, "batch": batch, "seconds": seconds, **row})

    peer_dir = Path(args.peer_dir or "")
    if args.peer_dir and (peer_dir / "deepspeech_pytorch" / "model.py").is_file():
        peer = load_peer(peer_dir)
        cases = [("gru", 256, 3, 8, 4.0)] + ([] if args.skip_lstm else [("lstm", 1024, 5, 4, 4.0)])
        for rnn, hidden, layers, batch, seconds in cases:
            label = f"{rnn.upper()} {layers}x{hidden} bidirectional, batch {batch} x {seconds:g} s"
            n = args.steps if rnn == "gru" else max(1, args.steps - 1)
            # alternate peer and ours so a change in machine load hits both alike
            p = measure(f"peer {label}", peer_step(peer, rnn, hidden, layers, batch, seconds),
                        batch * seconds, rate, 1, n)
            o = measure(f"ours {label}", ours_step(peer_architecture(rnn, hidden, layers), batch, seconds),
                        batch * seconds, rate, 1, n)
            result["peer"].append({"case": label, "peer": p, "ours": o,
                                   "speedup": round(o["audio_s_per_s"] / p["audio_s_per_s"], 2)})
            print(f"{label}: ours {o['audio_s_per_s']} vs peer {p['audio_s_per_s']} audio s/s "
                  f"({result['peer'][-1]['speedup']}x)", flush=True)
    else:
        print(f"peer checkout not found at {peer_dir}; skipping the comparison", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(stamped(result), indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
