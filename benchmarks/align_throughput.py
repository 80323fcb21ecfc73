"""Throughput of `ds2cli align` on this CPU: aligned audio seconds per wall second, one thread,
against its peer measured in the same run: the same audio through the same network with greedy
decoding only (what `ds2cli decode --greedy` must do anyway). The difference is the cost of the
Viterbi alignment, spans and features.

    python -m benchmarks.align_throughput [--corpus digits|arctic] [--checkpoint PATH]

Writes benchmarks/results/align_throughput.json."""
from __future__ import annotations

import argparse
import os
import platform
import time

from benchmarks.align_common import corpus_rows, find_checkpoint, write_result


def run(corpus: str, checkpoint: str | None, repeats: int) -> dict:
    import torch

    from ds2cli.align.aligner import align_manifest, emissions
    from ds2cli.ctc import greedy_text
    from ds2cli.inference import Recognizer

    torch.set_num_threads(1)
    path, provenance = find_checkpoint(corpus, checkpoint)
    recognizer = Recognizer.from_checkpoint(path)
    rows = corpus_rows(corpus, "test", 200 if corpus == "digits" else 0, 12)
    audio = sum(r["duration"] for r in rows)
    align_manifest(rows[:8], recognizer)  # warm-up (lazy imports, allocator)
    align_s, greedy_s = [], []
    for _ in range(repeats):  # interleaved, so both see the same load on this shared machine
        start = time.perf_counter()
        [greedy_text(e.log_probs, recognizer.tokenizer) for e in emissions(rows, recognizer)]
        greedy_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = align_manifest(rows, recognizer)
        align_s.append(time.perf_counter() - start)
    best_align, best_greedy = min(align_s), min(greedy_s)
    return {"model": provenance, "parameters": recognizer.model.num_parameters(), "utterances": len(rows),
            "audio_seconds": round(audio, 1), "aligned": sum(a.ok for a in result.alignments),
            "align_wall_seconds": [round(s, 2) for s in align_s],
            "greedy_wall_seconds": [round(s, 2) for s in greedy_s],
            "align_audio_s_per_s": round(audio / best_align, 1),
            "greedy_audio_s_per_s": round(audio / best_greedy, 1),
            "align_cost_vs_greedy": round(best_align / best_greedy, 3)}


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", choices=["digits", "arctic"], default=["digits", "arctic"])
    parser.add_argument("--checkpoint", help="model (only with a single --corpus)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.checkpoint and len(args.corpus) != 1:
        parser.error("--checkpoint needs exactly one --corpus")
    result = {"cpu": _cpu_name(), "cores": os.cpu_count(), "threads": 1,
              "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
              "note": "best of the repeats; the machine is shared, so absolute numbers vary with load"}
    for corpus in args.corpus:
        result[corpus] = run(corpus, args.checkpoint, args.repeats)
        print(corpus, result[corpus], flush=True)
    result["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    print("->", write_result("align_throughput", result))


if __name__ == "__main__":
    main()
