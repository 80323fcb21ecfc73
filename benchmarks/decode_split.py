"""Where the time of a whole `ds2cli decode` goes, and what the search costs a stream.

    python -m benchmarks.decode_split --checkpoint exp/tiny-stream/checkpoints/best.pt \\
        --manifest exp/tiny-stream/manifests/test.jsonl --lm exp/tiny-stream/lm/lm.bin

1. The split: Decoder.decode_manifest (what `ds2cli decode --manifest` runs) with each stage
   timed through the library: I/O (reading audio, writing the JSON lines), network (emissions),
   search (the beam search), word timing (CTC alignment of the transcript), greedy (the greedy
   transcript decode reports beside the beam's).
2. The whole decode (in this process, and as `ds2cli decode` processes) with the compiled code (the search core, ds2cli.decode.fast, and the word-
   timing Viterbi) against the numpy loops (the same results: fast.supports forced False, no
   compiled Viterbi), alternating rounds; transcripts and word times compared.
3. The search of a stream as `ds2cli serve` runs it: StreamRecognizer fed 160 ms chunks, 30
   streams stepped through the network together and then searched in turn (the server's batch),
   and one stream at a time; the beam search (advance, partial result, final) timed in CPU
   seconds of its thread per second of audio.

One thread. Writes benchmarks/results/decode_split.json (and a section of decode.md through
decode_compare's writer)."""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
STREAM_TARGET_MS = 0.5  # CPU ms of search per second of audio, beam 64 with the LM


class Clock:
    """Seconds spent in named stages (wall clock, or a CPU clock)."""

    def __init__(self, clock=time.perf_counter):
        self.clock, self.seconds = clock, {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + self.clock() - start
        return timed


@contextmanager
def patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextmanager
def search_core(compiled: bool):
    """The compiled code (the beam search core where it runs the scorer, the word-timing Viterbi),
    as decode runs by default, or the numpy loops everywhere (the same results)."""
    from ds2cli.decode import fast, timing

    if compiled:
        yield
        return
    with patched(fast, "supports", lambda scorer: False), patched(timing, "_viterbi", None):
        yield


def split(decoder, manifest, out_path) -> dict:
    """One decode_manifest with every stage timed; the seconds per stage and of the whole."""
    import ds2cli.decode.decoder as dmod

    clock = Clock()
    rec = decoder.recognizer
    with patched(decoder, "read_rows", clock.wrap("io_read", decoder.read_rows)), \
            patched(rec, "emissions", clock.wrap("network", rec.emissions)), \
            patched(decoder, "search", clock.wrap("search", decoder.search)), \
            patched(dmod, "token_spans", clock.wrap("timing", dmod.token_spans)), \
            patched(dmod, "word_timing", clock.wrap("timing", dmod.word_timing)), \
            patched(dmod, "greedy_search", clock.wrap("greedy", dmod.greedy_search)):
        start = time.perf_counter()
        report = decoder.decode_manifest(manifest, out=out_path)
        whole = time.perf_counter() - start
    # greedy_search is also called inside decoder.search only for method greedy; here it is beam
    stages = dict(clock.seconds)
    stages["io_write_and_rest"] = whole - sum(stages.values())
    return {"whole_seconds": whole, "stages": stages, "audio_seconds": report.audio_seconds,
            "utterances": len(report.transcripts), "wer": report.wer, "greedy_wer": report.greedy_wer}


def whole(decoder, manifest, rounds: int) -> dict:
    """decode_manifest with the compiled core and with the numpy loop, alternating rounds."""
    seconds = {"compiled": [], "numpy": []}
    texts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for mode in ("compiled", "numpy"):
                out = Path(tmp) / f"{mode}.jsonl"
                with search_core(mode == "compiled"):
                    start = time.perf_counter()
                    report = decoder.decode_manifest(manifest, out=out)
                    seconds[mode].append(time.perf_counter() - start)
                texts[mode] = [(t.text, t.timing) for t in report.transcripts]
                print(f"round {r + 1} {mode:8s} {seconds[mode][-1]:.2f} s", flush=True)
    best = {m: min(s) for m, s in seconds.items()}
    return {"rounds": rounds, "seconds": seconds, "best_seconds": best,
            "speedup": best["numpy"] / best["compiled"],
            "transcripts_and_times_identical": texts["compiled"] == texts["numpy"]}


def _cli(mode: str, argv: list[str]) -> None:
    """`ds2cli ARGV` in this process with the compiled code or the numpy loops (search_core)."""
    from ds2cli.cli import main

    with search_core(mode == "compiled"):
        main(argv, standalone_mode=False)


def cli(checkpoint, manifest, lm, beam: int, rounds: int) -> dict:
    """Wall seconds of whole `ds2cli decode --manifest` processes (start-up, model and LM loading
    included), compiled code against the numpy loops, alternating rounds; outputs compared."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    seconds, texts = {"compiled": [], "numpy": []}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for mode in ("compiled", "numpy"):
                out = Path(tmp) / f"{mode}.jsonl"
                argv = ["decode", "--checkpoint", str(checkpoint), "--manifest", str(manifest), "--lm", str(lm),
                        "--beam-size", str(beam), "--threads", "1", "--quiet", "--out", str(out)]
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", "import sys; from benchmarks.decode_split import _cli; "
                                "_cli(sys.argv[1], sys.argv[2:])", mode, *argv], cwd=root, check=True,
                               capture_output=True)
                seconds[mode].append(time.perf_counter() - start)
                texts[mode] = [{k: v for k, v in json.loads(line).items() if k != "score"}
                               for line in out.read_text().splitlines()]
                print(f"ds2cli decode round {r + 1} {mode:8s} {seconds[mode][-1]:.2f} s", flush=True)
    best = {m: min(v) for m, v in seconds.items()}
    return {"rounds": rounds, "seconds": seconds, "best_seconds": best, "speedup": best["numpy"] / best["compiled"],
            "outputs_identical": texts["compiled"] == texts["numpy"]}


def stream_search(decoder, waves: list[np.ndarray], chunk_ms: float, compiled: bool, batch: int = 1) -> dict:
    """CPU seconds of the beam search of each stream (advance, partial result, final) per audio
    second, the streams fed `chunk_ms` chunks through StreamRecognizer: `batch` streams at a time
    as the server runs them (one batched network step, then each stream's search in turn), or
    one stream after the other (batch 1: the network runs between any two searches)."""
    from ds2cli.stream.network import StreamingModel
    from ds2cli.stream.recognizer import StreamRecognizer

    cpu = Clock(time.thread_time)  # the search runs in this thread: its CPU time alone

    class Timed(StreamRecognizer):
        def _new_segment(self):
            super()._new_segment()
            s = self.search
            s.advance, s.best, s.finish = cpu.wrap("search", s.advance), cpu.wrap("search", s.best), \
                cpu.wrap("search", s.finish)

    model = StreamingModel(decoder.recognizer)
    config = StreamRecognizer.from_decoder(decoder, model=model).search_config
    size = int(round(chunk_ms * model.sample_rate / 1000))
    finals = []
    if batch == 0:  # the search alone: offline emissions (equal to the stream's) fed a chunk's frames at a time
        fs = model.frame_seconds
        with search_core(compiled):
            for em in decoder.recognizer.emissions(waves):
                rec, events, em = Timed(model, config), [], em.numpy()
                cuts = [min(len(em), int(round(k * chunk_ms / 1000 / fs))) for k in range(int(len(em) * fs * 1000 / chunk_ms) + 2)]
                for a, b in zip(cuts, cuts[1:]):
                    events += rec.on_emissions(em[a:b])
                finals.append(" ".join(e["text"] for e in events + [rec._final()] if e["type"] == "final" and e["text"]))
        waves_audio = sum(len(w) for w in waves) / decoder.recognizer.feature_config.sample_rate
        return {"compiled": compiled, "batch": 0, "audio_seconds": waves_audio,
                "search_cpu_seconds": cpu.seconds.get("search", 0.0),
                "search_cpu_ms_per_audio_s": 1000 * cpu.seconds.get("search", 0.0) / waves_audio, "finals": finals}
    with search_core(compiled):
        for first in range(0, len(waves), batch):
            group = waves[first: first + batch]
            recs = [Timed(model, config) for _ in group]
            events = [[] for _ in group]
            for k in range(max(-(-len(w) // size) for w in group)):
                live = [i for i, w in enumerate(group) if k * size < len(w)]
                out = model.step([recs[i].state for i in live], [group[i][k * size:(k + 1) * size] for i in live])
                for i, frames in zip(live, out):
                    events[i] += recs[i].on_emissions(frames)
                for i in live:
                    if (k + 1) * size >= len(group[i]):
                        events[i] += recs[i].finish()
            finals += [" ".join(e["text"] for e in ev if e["type"] == "final" and e["text"]) for ev in events]
    audio = sum(len(w) for w in waves) / decoder.recognizer.feature_config.sample_rate
    return {"compiled": compiled, "batch": batch, "audio_seconds": audio,
            "search_cpu_seconds": cpu.seconds.get("search", 0.0),
            "search_cpu_ms_per_audio_s": 1000 * cpu.seconds.get("search", 0.0) / audio, "finals": finals}


def markdown(res: dict) -> str:
    s = res["split"]
    total = s["whole_seconds"]
    names = {"network": "network (emissions)", "search": "search (beam, LM)", "timing": "word timing",
             "greedy": "greedy transcript", "io_read": "I/O: reading audio",
             "io_write_and_rest": "I/O: writing JSON lines, scoring, rest"}
    lines = ["## Where a whole `ds2cli decode` goes", "", res["note"], "" if res.get("note") else None,
             f"`Decoder.decode_manifest` of {s['utterances']} utterances ({s['audio_seconds']:.0f} s of audio), "
             f"beam {res['beam']} with the LM, one thread: {total:.2f} s (RTF {total / s['audio_seconds']:.4f}), "
             f"WER {100 * s['wer']:.2f}% (greedy {100 * s['greedy_wer']:.2f}%).", "",
             "| stage | seconds | share | with the numpy loops | share |", "| --- | ---: | ---: | ---: | ---: |"]
    lines = [x for x in lines if x is not None]
    n = res.get("split_numpy", {"stages": {}, "whole_seconds": float("nan")})
    for key, label in names.items():
        sec, old = s["stages"].get(key, 0.0), n["stages"].get(key, float("nan"))
        lines.append(f"| {label} | {sec:.2f} | {100 * sec / total:.0f}% | {old:.2f} | "
                     f"{100 * old / n['whole_seconds']:.0f}% |")
    lines.append(f"| whole | {total:.2f} | 100% | {n['whole_seconds']:.2f} | 100% |")
    w = res["whole"]
    lines += ["", f"Whole decode with the compiled code (search core and word-timing Viterbi) against the numpy "
              f"loops (best of {w['rounds']} alternating rounds): {w['best_seconds']['compiled']:.2f} s against "
              f"{w['best_seconds']['numpy']:.2f} s, {w['speedup']:.2f}x (target at least 2x: "
              f"{'met' if w['speedup'] >= 2 else 'not met'}); transcripts and word times identical: "
              f"{'yes' if w['transcripts_and_times_identical'] else 'NO'}."]
    c = res.get("cli")
    if c:
        lines += ["", f"Whole `ds2cli decode --manifest` processes (start-up, model and LM loading included; best of "
                  f"{c['rounds']} alternating rounds): {c['best_seconds']['compiled']:.2f} s with the compiled code "
                  f"against {c['best_seconds']['numpy']:.2f} s with the numpy loops, {c['speedup']:.2f}x; outputs "
                  f"identical (text, word times): {'yes' if c['outputs_identical'] else 'NO'}."]
    st = res["stream"]
    lines += ["", f"Search of a stream (`StreamRecognizer`, {res['chunk_ms']:g} ms chunks, beam {res['beam']} with the "
              f"LM, a partial result every chunk, endpointing on; {st['utterances']} utterances, "
              f"{st['audio_seconds']:.0f} s of audio), CPU time of the search thread per second of audio "
              f"(target at most {STREAM_TARGET_MS} ms):", "",
              "| streams stepped together | compiled core | numpy loop | target | finals identical |",
              "| ---: | ---: | ---: | --- | --- |"]
    for r in st["regimes"]:
        how = {0: "none: the search alone on precomputed emissions", 1: "1 (network between any two searches)"}.get(
            r["batch"], f"{r['batch']} (as the server batches)")
        lines.append(f"| {how} | {r['compiled_ms_per_audio_s']:.3f} ms | {r['numpy_ms_per_audio_s']:.3f} ms | "
                     f"{'met' if r['compiled_ms_per_audio_s'] <= STREAM_TARGET_MS else 'not met'} | "
                     f"{'yes' if r['finals_identical'] else 'NO'} |")
    lines += ["", "Finals equal in every regime: " + ("yes." if st.get("finals_equal_across_regimes") else "NO.")]
    by = {r["batch"]: r["compiled_ms_per_audio_s"] for r in st["regimes"]}
    if 0 in by and 1 in by:
        lines[-1] += (f" The same calls on the same frames cost {by[1] / by[0]:.1f}x more CPU when the network runs "
                      "between any two of them than back to back: a stream's search is a few small calls per "
                      "chunk (pruning, the compiled frame loop, the partial result), and between them the "
                      "network's weights and activations evict their code and data from the caches.")
    lines += ["", f"Reproduce: `python -m benchmarks.decode_split {res['command']}`"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--lm", required=True)
    p.add_argument("--beam", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--stream-utterances", type=int, default=100)
    p.add_argument("--chunk-ms", type=float, default=160.0)
    p.add_argument("--stream-batches", type=int, nargs="+", default=[30, 1, 0],
                   help="streams stepped together (the server's batch); 1: one stream after the other; "
                        "0: no network, the search alone on precomputed emissions")
    p.add_argument("--note", default="", help="a sentence about the model")
    p.add_argument("--out", default=str(RESULTS / "decode_split.json"))
    args = p.parse_args(argv)
    import torch

    from ds2cli.decode.decoder import load_decoder
    from ds2cli.manifest import read_manifest, read_row_audio

    torch.set_num_threads(1)
    decoder = load_decoder(args.checkpoint, lm=args.lm, options={"beam_size": args.beam})
    from benchmarks.decode_compare import _shown_command

    ckpt_dir = Path(args.checkpoint).resolve().parent
    exp_root = ckpt_dir.parent.parent if ckpt_dir.name == "checkpoints" else None
    command = _shown_command(sys.argv[1:] if argv is None else list(argv), exp_root)
    res = {"note": args.note, "command": command, "beam": args.beam,
           "chunk_ms": args.chunk_ms, "date": time.strftime("%Y-%m-%d"),
           "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "threads": 1}}
    with tempfile.TemporaryDirectory() as tmp:
        decoder.decode_manifest(args.manifest, out=Path(tmp) / "warm.jsonl")  # numba cache, LM pages, torch
        res["split"] = split(decoder, args.manifest, Path(tmp) / "split.jsonl")
        with search_core(False):
            res["split_numpy"] = split(decoder, args.manifest, Path(tmp) / "split_numpy.jsonl")
    print(json.dumps(res["split"], indent=1), flush=True)
    res["whole"] = whole(decoder, args.manifest, args.rounds)
    res["cli"] = cli(args.checkpoint, args.manifest, args.lm, args.beam, args.rounds)
    rate = decoder.recognizer.feature_config.sample_rate
    waves = [read_row_audio(r, rate) for r in read_manifest(args.manifest)[: args.stream_utterances]]
    res["stream"] = {"utterances": len(waves), "target_ms_per_audio_s": STREAM_TARGET_MS, "regimes": []}
    all_finals = []
    for batch in args.stream_batches:
        runs = {c: stream_search(decoder, waves, args.chunk_ms, c, batch) for c in (True, False)}
        all_finals.append(runs[True]["finals"])
        res["stream"]["audio_seconds"] = runs[True]["audio_seconds"]
        res["stream"]["regimes"].append({
            "batch": batch, "compiled_ms_per_audio_s": runs[True]["search_cpu_ms_per_audio_s"],
            "numpy_ms_per_audio_s": runs[False]["search_cpu_ms_per_audio_s"],
            "finals_identical": runs[True]["finals"] == runs[False]["finals"]})
    res["stream"]["finals_equal_across_regimes"] = all(f == all_finals[0] for f in all_finals)
    print(res["stream"], flush=True)
    from benchmarks.decode_compare import write_result

    write_result(Path(args.out), res, markdown)
    return res


if __name__ == "__main__":
    main()
