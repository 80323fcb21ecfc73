"""Preparation speed on a generated LibriSpeech layout: files per second through `prepare`
(directory walk, transcript parsing, header reads with truncation checks in `--jobs` processes,
manifest writing). Feature statistics are excluded (a fixed-size sample, independent of corpus size).

    python -m benchmarks.prepare_speed --files 20000 --jobs 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.paths import stamped

RESULTS = Path(__file__).resolve().parent / "results"


def make_tree(root: Path, n_files: int, per_chapter: int = 50) -> None:
    """LibriSpeech layout of short FLAC files (0.2-0.6 s of noise) with transcripts."""
    rng = np.random.default_rng(0)
    clips = [rng.normal(0, 0.1, int(16000 * d)).astype(np.float32) for d in (0.2, 0.3, 0.4, 0.5, 0.6)]
    n_chapters = -(-n_files // per_chapter)
    made = 0
    for c in range(n_chapters):
        speaker, chapter = 100 + c // 10, 1000 + c
        folder = root / "train-clean-100" / str(speaker) / str(chapter)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for k in range(min(per_chapter, n_files - made)):
            utt = f"{speaker}-{chapter}-{k:04d}"
            sf.write(folder / f"{utt}.flac", clips[k % len(clips)], 16000)
            words = " ".join(["ONE", "TWO", "THREE", "FOUR", "FIVE"][: 1 + k % 5])
            lines.append(f"{utt} SOME WORDS {words}")
            made += 1
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")


def run(files: int, jobs_list: list[int], work: Path) -> dict:
    from ds2cli.data_prep.common import prepare

    tree = work / "LibriSpeech"
    if not (tree / ".complete").exists() or sum(1 for _ in tree.rglob("*.flac")) != files:
        shutil.rmtree(tree, ignore_errors=True)
        t = time.time()
        make_tree(tree, files)
        (tree / ".complete").write_text("")
        print(f"generated {files} files in {time.time() - t:.1f}s")
    results = []
    for jobs in jobs_list:
        out = work / f"exp-j{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.time()
        report = prepare("librispeech", tree, out, jobs=jobs, stats_utterances=1, quiet=True)
        seconds = time.time() - t
        n = report.splits["train"]["utterances"]
        results.append({"jobs": jobs, "files": n, "seconds": round(seconds, 2),
                        "files_per_second": round(n / seconds, 1), "skipped": sum(report.skipped.values())})
        print(results[-1])
    return {"benchmark": "prepare_speed", "layout": "LibriSpeech train-clean-100, 50 files per chapter",
            "files": files, "results": results, "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "note": "2-core shared CI-class machine; other work may have been running (noisy)",
            "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "scratch" / "prepare")
    args = parser.parse_args()
    result = run(args.files, args.jobs, args.work)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prepare_speed.json").write_text(json.dumps(stamped(result), indent=2) + "\n")


if __name__ == "__main__":
    main()
