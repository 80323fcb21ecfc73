"""How fast is augmentation? Audio seconds processed per CPU second (x real time, one thread) for
each augmentation, beside torchaudio's peers measured in the same run, and beside computing the
DS2 features themselves (what a data worker does anyway). Target: noise mixing >= 200x per core.

    python -m benchmarks.augment_speed [--utterances 40] [--min-cpu 1.0]

Writes benchmarks/results/augment_speed.json."""
from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ds2cli.audio import read_audio
from ds2cli.augment import AugmentConfig, build_pipeline
from ds2cli.features import log_spectrogram
from ds2cli.fileio import write_json
from benchmarks.paths import stamped

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULT = REPO / "benchmarks" / "results" / "augment_speed.json"
SR = 16000
TARGET_NOISE_X = 200.0


def measure(func, items, audio_seconds: float, min_cpu: float) -> dict:
    """Run func over all items, repeated while fewer than min_cpu CPU seconds have passed."""
    func(items[0])  # warm up (imports, caches)
    passes, start = 0, time.process_time()
    while True:
        for item in items:
            func(item)
        passes += 1
        cpu = time.process_time() - start
        if cpu >= min_cpu:
            break
    return {"x_realtime": round(passes * audio_seconds / cpu, 1), "cpu_s": round(cpu, 3), "passes": passes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--min-cpu", type=float, default=1.0, help="CPU seconds per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)

    files = sorted((DATA / "arctic-cathy").glob("*.flac"))[: args.utterances]
    waves = [read_audio(f) for f in files]
    items = list(enumerate(waves))
    audio_s = sum(len(w) for w in waves) / SR
    feats = [log_spectrogram(torch.from_numpy(w)) for w in waves]
    noise_dir = DATA / "noise"

    def pipeline_of(steps, noise=None):
        p = build_pipeline(AugmentConfig.from_list(steps), SR, noise, total_epochs=10)
        return lambda item: p.apply_waveform(item[1], seed=0, epoch=1, utt_id=str(item[0]))

    ours = {
        "noise_recordings": pipeline_of([{"type": "noise", "prob": 1.0}], noise_dir),
        "noise_white": pipeline_of([{"type": "noise", "prob": 1.0, "params": {"colors": ["white"]}}]),
        "noise_pink": pipeline_of([{"type": "noise", "prob": 1.0, "params": {"colors": ["pink"]}}]),
        "noise_brown": pipeline_of([{"type": "noise", "prob": 1.0, "params": {"colors": ["brown"]}}]),
        "speed_0.9_1.1": pipeline_of([{"type": "speed", "params": {"factors": [0.9, 1.1]}}]),
        "gain": pipeline_of([{"type": "gain"}]),
        "ds2_default_speed+noise0.4": pipeline_of([{"type": "speed"}, {"type": "noise", "prob": 0.4}], noise_dir),
    }
    spec = build_pipeline(AugmentConfig.from_list([{"type": "specaugment"}]), SR)
    ours["specaugment"] = lambda item: spec.apply_features(feats[item[0]], seed=0, epoch=1, utt_id=str(item[0]))

    # Peers: torchaudio doing the same numerics, without our segment choice / RNG / records.
    import torchaudio.functional as AF
    import torchaudio.transforms as AT

    tensors = [torch.from_numpy(w)[None] for w in waves]  # (1, n)
    noise = torch.from_numpy(read_audio(noise_dir / "running_tap.wav"))
    segments = [noise[None, : t.shape[1]] for t in tensors]
    snr = torch.tensor([10.0])
    masks = torch.nn.Sequential(AT.FrequencyMasking(27), AT.FrequencyMasking(27),
                                AT.TimeMasking(100, p=0.2), AT.TimeMasking(100, p=0.2))
    peers = {
        "torchaudio.add_noise": lambda item: AF.add_noise(tensors[item[0]], segments[item[0]], snr),
        "torchaudio.speed_1.1": lambda item: AF.speed(tensors[item[0]], SR, 1.1),
        "torchaudio.Frequency+TimeMasking": lambda item: masks(feats[item[0]].T[None]),
        "ds2cli.log_spectrogram (features, for scale)": lambda item: log_spectrogram(tensors[item[0]][0]),
    }

    results = {name: measure(f, items, audio_s, args.min_cpu) for name, f in ours.items()}
    peer_results = {name: measure(f, items, audio_s, args.min_cpu) for name, f in peers.items()}
    noise_x = results["noise_recordings"]["x_realtime"]
    out = {
        "benchmark": "augment_speed",
        "what": "audio seconds processed per CPU second (x real time), one thread",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}, "
                   f"torch {torch.__version__}, numpy {np.__version__}",
        "threads": 1,
        "audio": f"{len(waves)} ARCTIC utterances, {audio_s:.1f} s; noise from ../shared/data/noise",
        "ours": results,
        "peers": peer_results,
        "ratio_noise_vs_torchaudio_add_noise": round(noise_x / peer_results["torchaudio.add_noise"]["x_realtime"], 2),
        "target": {"noise_recordings_min_x_realtime": TARGET_NOISE_X, "met": noise_x >= TARGET_NOISE_X},
    }
    write_json(RESULT, stamped(out))
    width = max(map(len, [*results, *peer_results]))
    for name, r in [*results.items(), *peer_results.items()]:
        print(f"{name:<{width}}  {r['x_realtime']:>10.1f}x real time  ({r['cpu_s']:.2f} CPU s)")
    print(f"noise mixing target {TARGET_NOISE_X:.0f}x: {'met' if out['target']['met'] else 'NOT met'}; wrote {RESULT}")


if __name__ == "__main__":
    main()
