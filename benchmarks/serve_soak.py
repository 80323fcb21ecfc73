"""Soak run of `ds2cli serve`: N concurrent real-time streams (default 30) for a long time (default
10 minutes) against one server process, with Batch Dispatch (eager, --max-wait-ms 0).

Every `--sample-seconds` the server's resident memory (RSS), open file descriptors and threads
are sampled; per window, the final and partial latencies (as in benchmarks/serve_load.py) and the
utterances finished. At the end: errors, the finals against offline decoding of the same model,
and /health (no stream left open). Memory growth is judged on the RSS after the first window
(allocator and caches warmed up) against the last window.

    python -m benchmarks.serve_soak --checkpoint exp/tiny-stream/checkpoints/best.pt \\
        --manifest exp/tiny-stream/manifests/test.jsonl
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import urllib.request
from pathlib import Path

from benchmarks.paths import stamped
from benchmarks.serve_load import MODES, RATE, Server, client, offline_texts, stats_ms

RESULTS = Path(__file__).resolve().parent / "results"
GROWTH_LIMIT = 0.05  # RSS may grow at most 5% from the end of the first window to the end


def memory_summary(windows: list[dict]) -> dict:
    """RSS after the first window, at the end, its peak, and its growth over the whole run and
    over the second half (a leak keeps growing; a warming allocator levels off)."""
    first, mid, last = windows[0], windows[len(windows) // 2], windows[-1]
    return {"after_first_window": first["rss_mb"], "middle": mid["rss_mb"], "end": last["rss_mb"],
            "max": max(w["rss_mb"] for w in windows),
            "growth": round((last["rss_mb"] - first["rss_mb"]) / first["rss_mb"], 4),
            "growth_second_half": round((last["rss_mb"] - mid["rss_mb"]) / mid["rss_mb"], 4)}


def sample(pid: int) -> dict:
    import psutil

    proc = psutil.Process(pid)
    return {"rss_mb": round(proc.memory_info().rss / 2**20, 1), "fds": proc.num_fds(), "threads": proc.num_threads()}


async def soak(server: Server, n: int, utts, seconds: float, window: float, seed: int) -> tuple[list, dict]:
    import aiohttp

    out = {"final": [], "partial": [], "ids": [], "refs": [], "hyps": [], "errors": []}
    windows, start = [], time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        deadline = start + seconds
        tasks = [asyncio.ensure_future(client(server.url, session, utts, random.Random(seed * 1000 + i), deadline, out))
                 for i in range(n)]
        seen = {"final": 0, "partial": 0, "utts": 0}
        while not all(t.done() for t in tasks):
            await asyncio.wait(tasks, timeout=window)
            final, partial = out["final"][seen["final"]:], out["partial"][seen["partial"]:]
            row = {"t_s": round(time.perf_counter() - start, 1), **sample(server.proc.pid),
                   "utterances": len(out["ids"]) - seen["utts"], "errors_total": len(out["errors"]),
                   "final_ms": stats_ms(final), "partial_ms": stats_ms(partial)}
            seen = {"final": len(out["final"]), "partial": len(out["partial"]), "utts": len(out["ids"])}
            windows.append(row)
            print(f"t={row['t_s']:6.0f}s rss {row['rss_mb']} MB fds {row['fds']} threads {row['threads']} "
                  f"utts {row['utterances']} final med/p98 {row['final_ms']['median']}/{row['final_ms']['p98']} ms "
                  f"errors {row['errors_total']}", flush=True)
        for t in tasks:
            t.result()  # a client that raised outside its own error handling fails the run
    return windows, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--streams", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--sample-seconds", type=float, default=30.0)
    ap.add_argument("--utterances", type=int, default=200, help="test utterances loaded")
    ap.add_argument("--threads", type=int, default=1, help="network threads of the server")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "serve_soak.json"))
    args = ap.parse_args()

    from ds2cli.audio import read_audio
    from ds2cli.fileio import write_json
    from ds2cli.metrics import wer

    with open(args.manifest) as fh:
        rows = [json.loads(line) for line in fh if line.strip()][: args.utterances]
    utts = [{"id": r["id"], "text": r["text"], "wave": read_audio(r["audio_filepath"], RATE)} for r in rows]
    offline = offline_texts(args.checkpoint, rows)
    server = Server(args.checkpoint, MODES["batch_dispatch"], args.threads)
    try:
        windows, out = asyncio.run(soak(server, args.streams, utts, args.seconds, args.sample_seconds, args.seed))
        with urllib.request.urlopen(server.http + "/health", timeout=10) as resp:
            health = json.loads(resp.read())
    finally:
        code = server.stop()
    first, last = windows[0], windows[-1]
    memory = memory_summary(windows)
    equal = sum(h.split() == offline[i].split() for i, h in zip(out["ids"], out["hyps"]))
    result = {
        "benchmark": "serve_soak", "checkpoint": "/".join(Path(args.checkpoint).parts[-3:]),
        "manifest": "/".join(Path(args.manifest).parts[-3:]), "streams": args.streams, "seconds": args.seconds,
        "chunk_ms": 160, "method": "greedy", "threads": args.threads, "cpus": os.cpu_count(),
        "utterances": len(out["ids"]), "errors": len(out["errors"]), "error_examples": out["errors"][:3],
        "final_latency_ms": stats_ms(out["final"]), "partial_latency_ms": stats_ms(out["partial"]),
        "wer": round(100 * wer(out["refs"], out["hyps"]), 2) if out["refs"] else None,
        "finals_equal_offline": f"{equal}/{len(out['ids'])}",
        "rss_mb": memory,
        "fds": {"after_first_window": first["fds"], "end": last["fds"]},
        "active_streams_after": health.get("streams", {}).get("active"), "server_exit": code, "windows": windows,
        "targets": {"errors": 0, "rss_growth_at_most": GROWTH_LIMIT},
    }
    result["met"] = (result["errors"] == 0 and memory["growth"] <= GROWTH_LIMIT and last["fds"] <= first["fds"] + 5
                     and equal == len(out["ids"]) and result["active_streams_after"] == 0)
    write_json(args.out, stamped(result))
    print(json.dumps({k: result[k] for k in ("utterances", "errors", "final_latency_ms", "rss_mb", "met")}))


if __name__ == "__main__":
    main()
