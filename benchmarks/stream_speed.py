"""Speed of the streaming path: the compute of one 160 ms chunk for 1, 10, 30 and 100 streams
advanced together (one batched StreamingModel.step) against advancing them one at a time, and
the real-time factor of streaming recognition against offline decoding of the same audio.

    python -m benchmarks.stream_speed --checkpoint exp/tiny-stream/checkpoints/best.pt \\
        --manifest exp/tiny-stream/manifests/test.jsonl

Without --checkpoint the network is the tiny-stream recipe's with random weights (speed does not
depend on them). One thread (per-core numbers); run it on a quiet machine. Writes
benchmarks/results/stream_speed.json (and stream.md). Target: at 30 streams the batched step
costs at most 1/5 per stream of advancing them one at a time."""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.paths import stamped

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "stream_speed.json"
STREAMS = (1, 10, 30, 100)
TARGET = 5.0  # batched at least 5x cheaper per stream at 30 streams


def recipe_model(name: str = "tiny-stream"):
    """A Recognizer with the recipe's network (random weights) and identity feature stats."""
    from ds2cli.features import FeatureConfig, FeatureStats
    from ds2cli.inference import Recognizer
    from ds2cli.model import DeepSpeech2, ModelConfig
    from ds2cli.recipe import load_recipe
    from ds2cli.text import CharTokenizer

    cfg = ModelConfig(**load_recipe(name)["model"])
    tok = CharTokenizer.english()
    return Recognizer(DeepSpeech2(cfg, len(tok)).eval(), tok, FeatureConfig(), FeatureStats.identity(cfg.n_bins))


def noise_speech(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    return (0.2 * np.sin(2 * np.pi * (150 + 400 * np.sin(2 * np.pi * 0.3 * t)) * t)
            + 0.05 * rng.standard_normal(n)).astype(np.float32)


def chunk_costs(model, n_streams: int, chunk: int, steps: int, warm: int = 5) -> dict:
    """Seconds per step of `n_streams` streams advanced together and one at a time (median over
    `steps` steps, after `warm` steps; streams start at different phases)."""
    waves = [noise_speech(chunk * (steps + warm + 3) / 16000, i) for i in range(n_streams)]
    out = {}
    for mode in ("batched", "one_at_a_time"):
        states = [model.new_state() for _ in range(n_streams)]
        offsets = [(i * 37) % chunk for i in range(n_streams)]  # different phases
        for st, w, off in zip(states, waves, offsets):
            model.step([st], [w[:off]])
        times = []
        for k in range(warm + steps):
            chunks = [w[off + k * chunk: off + (k + 1) * chunk] for w, off in zip(waves, offsets)]
            start = time.perf_counter()
            if mode == "batched":
                model.step(states, chunks)
            else:
                for st, c in zip(states, chunks):
                    model.step([st], [c])
            if k >= warm:
                times.append(time.perf_counter() - start)
        out[mode] = statistics.median(times)
    return {"streams": n_streams, "batched_step_ms": round(1000 * out["batched"], 3),
            "one_at_a_time_ms": round(1000 * out["one_at_a_time"], 3),
            "batched_per_stream_ms": round(1000 * out["batched"] / n_streams, 3),
            "one_at_a_time_per_stream_ms": round(1000 * out["one_at_a_time"] / n_streams, 3),
            "speedup_per_stream": round(out["one_at_a_time"] / out["batched"], 2)}


def rtf(decoder, waves: list[np.ndarray], chunk_ms: float) -> dict:
    """Real-time factors of offline decoding and of the streaming path (one stream at a time)
    with the decoder's search (greedy, or the KenLM beam)."""
    from ds2cli.stream.files import FileResult, stream_wave
    from ds2cli.stream.recognizer import StreamRecognizer
    from ds2cli.stream.network import StreamingModel

    audio = sum(len(w) for w in waves) / 16000
    start = time.perf_counter()
    ems = decoder.recognizer.emissions(waves)
    decoder.transcripts([str(i) for i in range(len(waves))], ems, [0.0] * len(waves))
    offline = time.perf_counter() - start
    model = StreamingModel(decoder.recognizer)
    compute = 0.0
    for w in waves:
        result = FileResult("")
        for _ in stream_wave(StreamRecognizer.from_decoder(decoder, model=model), w, chunk_ms, result=result):
            pass
        compute += result.compute_seconds
    return {"method": decoder.method, "audio_seconds": round(audio, 1), "offline_rtf": round(offline / audio, 4),
            "stream_rtf": round(compute / audio, 4), "stream_over_offline": round(compute / offline, 2)}


def speed_md(r: dict) -> list[str]:
    lines = [f"## Speed ({r['model']}, {r['threads']} thread, {r['cpu']}, {r['date']})", "",
             f"One {r['chunk_ms']:g} ms chunk per stream; median step time.", "",
             "| streams | batched step | one at a time | per stream, batched | per stream, one at a time | speed-up |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in r["chunks"]:
        lines.append(f"| {row['streams']} | {row['batched_step_ms']:.2f} ms | {row['one_at_a_time_ms']:.2f} ms | "
                     f"{row['batched_per_stream_ms']:.3f} ms | {row['one_at_a_time_per_stream_ms']:.3f} ms | "
                     f"{row['speedup_per_stream']:.1f}x |")
    lines += ["", f"Target: batched at least {TARGET:g}x cheaper per stream at 30 streams: "
              f"{'met' if r['met'] else 'not met'}.", "",
              "| search | audio | offline RTF | streaming RTF | streaming / offline |", "| --- | --- | --- | --- | --- |"]
    for row in r["rtf"]:
        lines.append(f"| {row['method']} | {row['audio_seconds']:.0f} s | {row['offline_rtf']:.4f} | "
                     f"{row['stream_rtf']:.4f} | {row['stream_over_offline']:.2f} |")
    return lines + [""]


def main(argv=None) -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint")
    p.add_argument("--manifest", help="utterances for the real-time factors (else synthetic audio)")
    p.add_argument("--utterances", type=int, default=40)
    p.add_argument("--chunk-ms", type=float, default=160.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from ds2cli.decode.decoder import Decoder, load_decoder
    from ds2cli.decode.config import DecodeConfig
    from ds2cli.stream.network import StreamingModel

    if args.checkpoint:
        decoders = [load_decoder(args.checkpoint, options={"method": "greedy"}, build_lm=False)]
        beam = load_decoder(args.checkpoint, build_lm=False)
        if beam.method == "beam":
            decoders.append(beam)
        label = "recipe " + str(decoders[0].meta.get("recipe") or Path(args.checkpoint).parent.parent.name)
    else:
        decoders = [Decoder(recipe_model(), DecodeConfig(method="greedy"))]
        label = "tiny-stream network, random weights"
    model = StreamingModel(decoders[0].recognizer)
    chunk = int(round(args.chunk_ms * 16))
    rows = [chunk_costs(model, n, chunk, args.steps) for n in STREAMS]
    for row in rows:
        print(row)
    if args.manifest:
        from ds2cli.manifest import read_manifest, read_row_audio

        waves = [read_row_audio(r, 16000) for r in read_manifest(args.manifest)[: args.utterances]]
    else:
        waves = [noise_speech(3.0, 100 + i) for i in range(args.utterances)]
    rtfs = [rtf(d, waves, args.chunk_ms) for d in decoders]
    for row in rtfs:
        print(row)
    at30 = next(r for r in rows if r["streams"] == 30)
    result = {"benchmark": "stream_speed", "date": time.strftime("%Y-%m-%d"), "model": label,
              "latency_ms": model.latency_ms, "threads": 1, "cpu": platform.processor() or platform.machine(),
              "chunk_ms": args.chunk_ms, "chunks": rows, "rtf": rtfs, "target_speedup_at_30": TARGET,
              "met": at30["speedup_per_stream"] >= TARGET}
    from ds2cli.fileio import write_json

    write_json(args.out, stamped(result))
    from benchmarks.stream_accuracy import write_md

    write_md()


if __name__ == "__main__":
    main()
