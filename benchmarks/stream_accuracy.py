"""Accuracy of a streaming (forward-only + lookahead) model next to the bidirectional one on the
same test split: greedy and KenLM WER through `ds2cli decode`, and through the streaming path
(StreamRecognizer fed 160 ms chunks), whose finals must equal decode's transcripts; bf16 streaming.

    python -m benchmarks.stream_accuracy --stream exp/tiny-stream/checkpoints/best.pt \\
        --bidirectional exp/tiny/checkpoints/best.pt --manifest exp/tiny-stream/manifests/test.jsonl

writes benchmarks/results/stream_accuracy.json (and stream.md). `make demo` runs

    python -m benchmarks.stream_accuracy --demo GREEDY.jsonl LM.jsonl --manifest M --out F

which scores the demo's own decodes of the streaming model and prints them next to the recorded
bidirectional numbers (the demo has no time to train both models)."""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from benchmarks.paths import stamped

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "stream_accuracy.json"


def _score(ids, refs, hyps) -> dict:
    from ds2cli.metrics import score_pairs

    s = score_pairs(list(zip(ids, refs, hyps)))
    return {"wer": round(s.wer.rate, 4), "cer": round(s.cer.rate, 4)}


def _rows(manifest):
    from ds2cli.manifest import read_manifest
    from ds2cli.text import normalize

    rows = read_manifest(manifest)
    return rows, [normalize(r["text"], "en") for r in rows]


def decode_split(checkpoint, manifest, method: str, precision: str = "fp32") -> tuple[list[str], float]:
    """Transcripts of the split through ds2cli decode (recipe LM and settings), and seconds."""
    from ds2cli.decode.decoder import load_decoder

    decoder = load_decoder(checkpoint, options={"method": method, "precision": precision}, build_lm=False)
    start = time.perf_counter()
    rows, _ = _rows(manifest)
    waves, ok, errors = decoder.read_rows(rows)
    assert not errors, errors
    texts = [t.text for t in decoder.transcripts([r["id"] for r in ok], decoder.recognizer.emissions(waves),
                                                 [0.0] * len(ok))]
    return texts, time.perf_counter() - start


def stream_split(checkpoint, manifest, method: str, precision: str = "fp32", chunk_ms: float = 160.0):
    """Transcripts of the split through the streaming path (one stream at a time), and seconds."""
    from ds2cli.manifest import read_row_audio
    from ds2cli.stream.files import FileResult, stream_wave
    from ds2cli.stream.setup import load_stream

    setup = load_stream(checkpoint, options={"method": method, "precision": precision}, build_lm=False)
    rows, _ = _rows(manifest)
    texts, compute = [], 0.0
    for row in rows:
        result = FileResult(row["id"])
        for _ in stream_wave(setup.recognizer(), read_row_audio(row, setup.model.sample_rate), chunk_ms,
                             result=result):
            pass
        texts.append(result.text)
        compute += result.compute_seconds
    return texts, compute, setup


def measure(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    rows, refs = _rows(args.manifest)
    ids = [r["id"] for r in rows]
    audio = sum(float(r.get("duration") or 0) for r in rows)
    out = {"benchmark": "stream_accuracy", "date": time.strftime("%Y-%m-%d"), "manifest": args.manifest_label,
           "utterances": len(rows), "audio_seconds": round(audio, 1), "threads": args.threads,
           "cpu": platform.processor() or platform.machine(), "chunk_ms": 160}
    stream = {"model": args.stream_label}
    for method, label in (("greedy", "greedy"), ("beam", "kenlm_beam")):
        dec, dec_s = decode_split(args.stream, args.manifest, method)
        st, st_s, setup = stream_split(args.stream, args.manifest, method)
        same = sum(a == b for a, b in zip(dec, st))
        stream[label] = {"decode": _score(ids, refs, dec), "stream": _score(ids, refs, st),
                         "stream_equals_decode": f"{same}/{len(rows)}",
                         "decode_seconds": round(dec_s, 1), "stream_compute_seconds": round(st_s, 1)}
        print(f"streaming model {label}: {stream[label]}", file=sys.stderr)
    stream["latency_ms"] = setup.model.latency_ms
    bf16, bf16_s, _ = stream_split(args.stream, args.manifest, "greedy", "bf16")
    stream["greedy_bf16_stream"] = {**_score(ids, refs, bf16), "stream_compute_seconds": round(bf16_s, 1)}
    print(f"bf16 greedy stream: {stream['greedy_bf16_stream']}", file=sys.stderr)
    out["streaming"] = stream
    if args.bidirectional:
        bidi = {"model": args.bidirectional_label}
        for method, label in (("greedy", "greedy"), ("beam", "kenlm_beam")):
            dec, dec_s = decode_split(args.bidirectional, args.manifest, method)
            bidi[label] = {"decode": _score(ids, refs, dec), "decode_seconds": round(dec_s, 1)}
            print(f"bidirectional {label}: {bidi[label]}", file=sys.stderr)
        out["bidirectional"] = bidi
    return out


def table(streaming: dict, bidirectional: dict | None, recorded: bool) -> str:
    def pct(x):
        return f"{100 * x:.2f}%"

    lines = ["| model | greedy WER | greedy CER | KenLM WER | KenLM CER |", "| --- | --- | --- | --- | --- |"]
    for name, m in (("streaming (forward-only + lookahead)", streaming),
                    ("bidirectional" + (" (recorded)" if recorded else ""), bidirectional)):
        if m:
            g, k = m["greedy"]["decode"], m["kenlm_beam"]["decode"]
            lines.append(f"| {name}: {m['model']} | {pct(g['wer'])} | {pct(g['cer'])} | {pct(k['wer'])} | {pct(k['cer'])} |")
    return "\n".join(lines)


def demo(args) -> None:
    """Score the demo's decodes of its streaming model; print them beside the recorded bidirectional."""
    rows, refs = _rows(args.manifest)
    by_id = dict(zip([r["id"] for r in rows], refs))
    streaming = {"model": "recipe tiny-stream (this demo)"}
    for path, label in zip(args.demo, ("greedy", "kenlm_beam")):
        hyps = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
        hyps = [h for h in hyps if "id" in h]
        streaming[label] = {"decode": _score([h["id"] for h in hyps], [by_id[h["id"]] for h in hyps],
                                             [h["text"] for h in hyps])}
    recorded = json.loads(OUT.read_text(encoding="utf-8")) if OUT.is_file() else {}
    print(table(streaming, recorded.get("bidirectional"), recorded=True))
    if recorded.get("streaming"):
        print(f"(recorded run of the same recipe: {table(recorded['streaming'], None, False).splitlines()[-1]})")
    if args.out:
        from ds2cli.fileio import write_json

        write_json(args.out, {"streaming": streaming, "bidirectional_recorded": recorded.get("bidirectional")})


def write_md() -> None:
    """benchmarks/results/stream.md from the stream JSON results that exist."""
    parts = ["# Streaming recognition", ""]
    if OUT.is_file():
        r = json.loads(OUT.read_text(encoding="utf-8"))
        s = r["streaming"]
        parts += [f"## Accuracy ({r['manifest']}, {r['utterances']} utterances, {r['date']})", "",
                  table(s, r.get("bidirectional"), False), "",
                  f"Streaming path (160 ms chunks, default endpointing) against `ds2cli decode` on the same "
                  f"model: greedy finals equal decode's for {s['greedy']['stream_equals_decode']} utterances "
                  f"(WER {100 * s['greedy']['stream']['wer']:.2f}%), KenLM beam for "
                  f"{s['kenlm_beam']['stream_equals_decode']} (WER {100 * s['kenlm_beam']['stream']['wer']:.2f}%). "
                  f"bf16 streaming greedy WER {100 * s['greedy_bf16_stream']['wer']:.2f}% "
                  f"(fp32 {100 * s['greedy']['stream']['wer']:.2f}%). Algorithmic latency {s['latency_ms']:.0f} ms.",
                  ""]
    speed = RESULTS / "stream_speed.json"
    if speed.is_file() and (Path(__file__).parent / "stream_speed.py").is_file():
        from benchmarks.stream_speed import speed_md

        parts += speed_md(json.loads(speed.read_text(encoding="utf-8")))
    from ds2cli.fileio import atomic_path

    with atomic_path(RESULTS / "stream.md") as tmp:
        Path(tmp).write_text("\n".join(parts) + "\n", encoding="utf-8")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stream", help="checkpoint of the streaming model")
    p.add_argument("--bidirectional", help="checkpoint of the bidirectional model")
    p.add_argument("--manifest", required=True)
    p.add_argument("--stream-label", default="recipe tiny-stream")
    p.add_argument("--bidirectional-label", default="recipe tiny")
    p.add_argument("--manifest-label", default="tiny test split")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--demo", nargs=2, metavar=("GREEDY_JSONL", "LM_JSONL"))
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.demo:
        return demo(args)
    from ds2cli.fileio import write_json

    result = measure(args)
    write_json(args.out or OUT, stamped(result))
    write_md()
    print(table(result["streaming"], result.get("bidirectional"), False))


if __name__ == "__main__":
    main()
