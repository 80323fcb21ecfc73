"""`make demo` timed end to end: scripts/demo.sh (prepare the synth corpus, train the tiny-stream recipe,
decode the test split greedily and with the recipe's LM, score) into a fresh experiment folder,
then the scores of its two decodes and the dev curve from its train report.

    python -m benchmarks.demo_time [--exp-root exp/demo-time]

Writes benchmarks/results/demo.json. Targets: at most 15 minutes on an idle 2-core CPU, and the
streaming model's test WER with the word LM at most 2% (its greedy WER is reported beside the
bidirectional tiny recipe's in benchmarks/results/stream_accuracy.json)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from benchmarks.paths import stamped

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TARGETS = {"wall_seconds": 900, "kenlm_beam_wer": 0.02}


def main(argv=None) -> dict:
    from ds2cli.metrics import score_files

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp-root", default=str(REPO / "exp" / "demo-time"), help="emptied first")
    ap.add_argument("--ds2cli", default=str(REPO / ".venv" / "bin" / "ds2cli"))
    ap.add_argument("--note", default="")
    ap.add_argument("--out", default=str(RESULTS / "demo.json"))
    args = ap.parse_args(argv)
    root = Path(args.exp_root)
    shutil.rmtree(root, ignore_errors=True)
    start = time.time()
    subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), args.ds2cli, str(root), sys.executable], cwd=REPO,
                   check=True)
    wall = time.time() - start
    exp = root / "tiny-stream"
    test = exp / "manifests" / "test.jsonl"
    scores = {name: score_files(test, exp / "decode" / f"test.{name}.jsonl").score for name in ("greedy", "lm")}
    report = json.loads((exp / "train_report.json").read_text())
    result = {
        "benchmark": "make demo (scripts/demo.sh: prepare, train the tiny-stream recipe, decode greedy and with "
                     "the recipe's word LM, score, stream three test files)",
        "date": date.today().isoformat(), "cpu_cores": os.cpu_count(), "wall_seconds": round(wall),
        "train_seconds": report["seconds"], "train_audio_s_per_s": round(report["audio_seconds_per_second"], 1),
        "train_utterances": report["train_utterances"], "epochs": report["epochs"],
        "test_utterances": len(scores["greedy"].utterances),
        "greedy": {"wer": round(scores["greedy"].wer.rate, 4), "cer": round(scores["greedy"].cer.rate, 4)},
        "kenlm_beam": {"wer": round(scores["lm"].wer.rate, 4), "cer": round(scores["lm"].cer.rate, 4)},
        "dev_cer_by_epoch": [round(h["dev_cer"], 4) for h in report["history"] if "dev_cer" in h],
        "targets": TARGETS,
    }
    result["met"] = wall <= TARGETS["wall_seconds"] and result["kenlm_beam"]["wer"] <= TARGETS["kenlm_beam_wer"]
    if args.note:
        result["note"] = args.note
    result = stamped(result)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
