"""`make bench`: every benchmark in sequence, each writing benchmarks/results/*.json. Long: the
convergence runs train models to completion (hours on a 2-core CPU). The benchmarks against peers
take the peer's checkout as an argument (train_speed: deepspeech.pytorch, ntm_speed: pytorch-ntm)
and time ds2cli alone without it. The GPU measurements (benchmarks/gpu_check.py) run by hand on a
GPU machine; see that file.

    python -m benchmarks.run_all [--only NAME ...] [--ds-peer DIR] [--ntm-peer DIR]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

# (name, module arguments), in the order in which the later benchmarks reuse what the first ones trained
BENCHMARKS = [
    ("prepare_speed", ["benchmarks.prepare_speed"]),
    ("augment_speed", ["benchmarks.augment_speed"]),
    ("train_speed", ["benchmarks.train_speed"]),
    ("demo_time", ["benchmarks.demo_time"]),
    ("train_convergence", ["benchmarks.train_convergence", "--recipes", "tiny", "digits", "arctic"]),
    ("decode_compare", ["benchmarks.decode_compare", "--exp-dir", "exp/arctic", "--recipes", "exp/tiny", "exp/arctic"]),
    ("align_timing", ["benchmarks.align_timing"]),
    ("align_cleaning", ["benchmarks.align_cleaning"]),
    ("align_throughput", ["benchmarks.align_throughput"]),
    ("ntm_speed", ["benchmarks.ntm_speed"]),
    ("ntm_convergence", ["benchmarks.ntm_convergence", "--task", "copy", "--seeds", "3"]),
    ("ntm_report", ["benchmarks.ntm_report"]),
    ("results_report", ["benchmarks.results_report"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks in sequence.")
    parser.add_argument("--only", nargs="+", choices=[n for n, _ in BENCHMARKS])
    parser.add_argument("--ds-peer", help="checkout of deepspeech.pytorch, for train_speed")
    parser.add_argument("--ntm-peer", help="checkout of pytorch-ntm, for ntm_speed")
    args = parser.parse_args()
    peers = {"train_speed": ["--peer-dir", args.ds_peer] if args.ds_peer else [],
             "ntm_speed": ["--peer", args.ntm_peer] if args.ntm_peer else []}
    failed = []
    for name, argv in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        argv = argv + peers.get(name, [])
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", *argv]).returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
