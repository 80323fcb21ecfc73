"""GPU measurements, in two stages because the GPU machine has no KenLM:

    python -m benchmarks.gpu_check device --out DIR [--peer-dir P] [--checkpoint C --manifest M]
        (on the GPU) training step time, throughput and peak memory of the librispeech and tiny
        recipes' models at fp32 / bf16 / fp16, next to deepspeech.pytorch's model at the
        librispeech architecture; inference speed and greedy WER of a trained checkpoint at each
        precision, with the emissions saved to DIR/emissions.pt; peak memory on one long recording.
    python -m benchmarks.gpu_check finish DIR --checkpoint C --lm LM [--results R]
        (here) the LM beam search WER of each precision's emissions, then the results file
        (default benchmarks/results/gpu.json).

Training uses the trainer's own loss (ds2cli.trainer.ctc_loss_sum) under its autocast, with loss
scaling at fp16, on random features of the recipe's batch size. TF32 stays as torch sets it by
default (off for plain matmuls, allowed in cuDNN): "fp32" is what users get, and the results
record both flags."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from benchmarks.train_speed import N_BINS, VOCAB, _targets, load_peer, peer_architecture, peer_step
from ds2cli.model import DeepSpeech2, ModelConfig
from benchmarks.paths import stamped

RESULTS = Path(__file__).resolve().parent / "results"
PRECISIONS = ("fp32", "bf16", "fp16")


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2 ** 30 if torch.cuda.is_available() else float("nan")


def reset_peak():
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def timed(step, warmup: int, steps: int) -> tuple[float, float]:
    """(median seconds per step, peak GiB allocated) of a GPU step."""
    reset_peak()
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], peak_gib()


def ours_train_step(cfg: ModelConfig, batch: int, seconds: float, precision: str, device: torch.device):
    """One optimiser step as the trainer takes it (autocast, fp32 loss, loss scaling at fp16)."""
    from ds2cli.trainer import autocast, ctc_loss_sum

    torch.manual_seed(0)
    model = DeepSpeech2(cfg, VOCAB).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    frames = int(seconds * 100) + 1
    targets, target_lengths = _targets(batch, seconds)
    data = SimpleNamespace(feats=torch.randn(batch, frames, N_BINS), lengths=torch.full((batch,), frames),
                           targets=targets, target_lengths=target_lengths)

    def step():
        with autocast(device, precision):
            loss, _ = ctc_loss_sum(model, data, device)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 400.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    return step


def training(peer_dir: Path | None, device: torch.device, quick: bool) -> dict:
    from ds2cli.recipe import load_recipe

    rows = []
    # the recipes' max_batch_seconds (480, 90)
    batches = {"librispeech": (32, 15.0), "tiny": (30, 3.0)} if not quick else {"tiny": (2, 1.0)}
    precisions = PRECISIONS if device.type == "cuda" else ("fp32", "bf16")
    warmup, steps = (3, 10) if not quick else (1, 1)
    for recipe, (batch, seconds) in batches.items():
        cfg = ModelConfig(**load_recipe(recipe)["model"])
        for precision in precisions:
            sec, peak = timed(ours_train_step(cfg, batch, seconds, precision, device), warmup, steps)
            rows.append({"model": f"ds2cli {recipe}", "precision": precision, "batch": batch, "seconds": seconds,
                         "step_s": round(sec, 4), "audio_s_per_s": round(batch * seconds / sec, 1),
                         "peak_gib": round(peak, 2)})
            print(json.dumps(rows[-1]), flush=True)
    out = {"recipes": rows, "peer": []}
    if peer_dir and (peer_dir / "deepspeech_pytorch" / "model.py").is_file():
        peer = load_peer(peer_dir)
        cases = (("gru", 800, 5, 32, 15.0), ("lstm", 1024, 5, 32, 15.0)) if not quick else (("gru", 64, 1, 2, 1.0),)
        for rnn, hidden, layers, batch, seconds in cases:
            label = f"{rnn.upper()} {layers}x{hidden} bidirectional, batch {batch} x {seconds:g} s, fp32"
            p_sec, p_peak = timed(peer_step(peer, rnn, hidden, layers, batch, seconds, device=device.type),
                                  warmup, steps)
            o_sec, o_peak = timed(ours_train_step(peer_architecture(rnn, hidden, layers), batch, seconds,
                                                  "fp32", device), warmup, steps)
            out["peer"].append({"case": label, "peer_step_s": round(p_sec, 4), "ours_step_s": round(o_sec, 4),
                                "peer_peak_gib": round(p_peak, 2), "ours_peak_gib": round(o_peak, 2),
                                "speedup": round(p_sec / o_sec, 2)})
            print(json.dumps(out["peer"][-1]), flush=True)
    return out


def inference(checkpoint: str, manifest: str, out_dir: Path, device: torch.device, limit: int | None) -> dict:
    """Network speed and greedy WER at each precision; the emissions go to out_dir/emissions.pt."""
    from ds2cli.decode.decoder import hypothesis_text, load_decoder
    from ds2cli.decode.beam import greedy_search
    from ds2cli.manifest import read_manifest
    from ds2cli.metrics import wer
    from ds2cli.text import normalize

    rows = read_manifest(manifest)[:limit]
    result, saved = {"utterances": len(rows)}, {}
    for precision in PRECISIONS if device.type == "cuda" else ("fp32", "bf16"):
        dec = load_decoder(checkpoint, no_lm=True, device=str(device), options={"precision": precision})
        waves, ok, bad = dec.read_rows(rows)
        assert not bad, bad
        rec = dec.recognizer
        rec.emissions(waves[:16], batch_size=16)  # warm-up
        sync()
        start = time.perf_counter()
        ems = rec.emissions(waves, batch_size=16)
        seconds = time.perf_counter() - start
        refs = [normalize(r["text"], rec.tokenizer.language) for r in ok]
        hyps = [hypothesis_text(greedy_search(e.numpy()).tokens, dec.tokenizer) for e in ems]
        audio = sum(len(w) for w in waves) / rec.feature_config.sample_rate
        result[precision] = {"greedy_wer": wer(refs, hyps), "network_rtf": seconds / audio}
        saved[precision] = ems
        saved["refs"] = refs
        print(precision, json.dumps(result[precision]), flush=True)
        if precision == "bf16":  # one long recording: every test utterance end to end
            long_wave = np.concatenate(waves)
            reset_peak()
            start = time.perf_counter()
            (em,) = rec.emissions([long_wave])
            sync()
            result["long_audio"] = {"seconds": len(long_wave) / rec.feature_config.sample_rate,
                                    "frames": int(em.shape[0]), "wall_s": time.perf_counter() - start,
                                    "peak_gib": peak_gib(), "precision": precision}
            print("long audio", json.dumps(result["long_audio"]), flush=True)
    torch.save(saved, out_dir / "emissions.pt")
    return result


def device_stage(args) -> None:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
              "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
              "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    if args.checkpoint:
        result["inference"] = inference(args.checkpoint, args.manifest, out_dir, device, args.limit)
    result["training"] = training(Path(args.peer_dir) if args.peer_dir else None, device, args.quick)
    (out_dir / "gpu_device.json").write_text(json.dumps(result, indent=2) + "\n")


def finish_stage(args) -> None:
    """LM beam search over each precision's GPU emissions (here, where KenLM is)."""
    from ds2cli.decode.decoder import hypothesis_text, load_decoder
    from ds2cli.fileio import write_json
    from ds2cli.metrics import wer

    device_dir = Path(args.dir)
    result = json.loads((device_dir / "gpu_device.json").read_text())
    saved = torch.load(device_dir / "emissions.pt", weights_only=True)
    dec = load_decoder(args.checkpoint, lm=args.lm)
    inf = result.get("inference", {})
    for precision in PRECISIONS:
        if precision in saved:
            hyps = [hypothesis_text(dec.search(e.numpy())[0].tokens, dec.tokenizer) for e in saved[precision]]
            inf[precision]["lm_wer"] = wer(saved["refs"], hyps)
            print(precision, json.dumps(inf[precision]), flush=True)
    for precision in ("bf16", "fp16"):
        if precision in inf:
            inf[precision]["lm_wer_difference"] = inf[precision]["lm_wer"] - inf["fp32"]["lm_wer"]
            inf[precision]["greedy_wer_difference"] = inf[precision]["greedy_wer"] - inf["fp32"]["greedy_wer"]
    result["note"] = args.note
    write_json(args.results, stamped(result))
    print(f"wrote {args.results}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    d = sub.add_parser("device")
    d.add_argument("--out", required=True)
    d.add_argument("--peer-dir")
    d.add_argument("--checkpoint")
    d.add_argument("--manifest")
    d.add_argument("--limit", type=int, help="Only the first N utterances of the manifest.")
    d.add_argument("--device", default="cuda")
    d.add_argument("--quick", action="store_true", help="Tiny sizes, to check the script on a CPU.")
    f = sub.add_parser("finish")
    f.add_argument("dir")
    f.add_argument("--checkpoint", required=True)
    f.add_argument("--lm", required=True)
    f.add_argument("--note", default="")
    f.add_argument("--results", default=str(RESULTS / "gpu.json"))
    args = ap.parse_args(argv)
    (device_stage if args.stage == "device" else finish_stage)(args)


if __name__ == "__main__":
    main()
