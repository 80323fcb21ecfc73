"""Real, unseen speakers: the speechocean recipe's configurations on its whole test split (125
speakers never heard in training), greedy and with the word LM from the training text, beside
pocketsphinx (its packaged English model and LM, default settings) on the same split.

    python -m benchmarks.realspeech [--configs scratch finetuned pooled averaged pocketsphinx]
        [--exp-root exp] [--data-dir ../shared/data/speechocean762] [--pretrained exp/tiny/checkpoints/best.pt]
        [--limit N] [--set SECTION.KEY=VALUE ...]

Configurations (each is the ds2cli command it runs, recorded in the results):
  scratch      ds2cli train --recipe speechocean --exp-dir EXP/so-scratch
  finetuned    ... --init-from PRETRAINED (the synthetic tiny model) --exp-dir EXP/so-finetuned
  pooled       ... --init-from PRETRAINED --set train.pool=[the synthetic train manifest, weight 1]
  averaged     ds2cli average of the last 5 epochs of the best of the above
Each trained model is decoded with `ds2cli decode --manifest test.jsonl` (greedy, then beam with
the recipe's LM). Training runs one at a time (they share the CPU; run it under the heavy lock).
Results: benchmarks/results/realspeech.json (one entry per configuration, merged)."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.paths import command_line, shown, stamped

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "realspeech.json"
RECIPE_ALPHA_BETA = (0.8, 1.0)  # recipes/speechocean.toml [decode], given explicitly: not the tuned values
CONFIGS = ("scratch", "finetuned", "pooled", "averaged", "pocketsphinx")


def train_command(config: str, exp_root: Path, data_dir: str, pretrained: str, pool_manifest: str,
                  sets: list[str], pool_weight: float = 1.0) -> list[str]:
    """The `ds2cli train` command of a trained configuration."""
    cmd = ["ds2cli", "train", "--recipe", "speechocean", "--data-dir", data_dir,
           "--exp-dir", str(exp_root / f"so-{config}"), "--quiet", "--json"]
    if config in ("finetuned", "pooled"):
        cmd += ["--init-from", pretrained]
    if config == "pooled":
        cmd += ["--set", f'train.pool=[{{manifest = {json.dumps(pool_manifest)}, weight = {pool_weight}}}]']
    for item in sets:
        cmd += ["--set", item]
    return cmd


def decode_commands(checkpoint: Path, manifest: Path, out_dir: Path) -> dict[str, list[str]]:
    base = ["ds2cli", "decode", "--checkpoint", str(checkpoint), "--manifest", str(manifest), "--quiet"]
    return {"greedy": base + ["--method", "greedy", "--no-lm", "--out", str(out_dir / "hyp_greedy.jsonl")],
            "lm": base + ["--alpha", str(RECIPE_ALPHA_BETA[0]), "--beta", str(RECIPE_ALPHA_BETA[1]),
                          "--out", str(out_dir / "hyp_lm.jsonl")]}


def recorded(cmd: list[str]) -> str:
    """A command as the results record it: absolute paths shown relative to the repository."""
    return shlex.join(shown(c) if c.startswith("/") else c for c in cmd)


def _ds2cli(cmd: list[str]) -> str:
    """Run a ds2cli command (as `python -m ds2cli`) and return its stdout; fail loudly."""
    done = subprocess.run([sys.executable, "-m", "ds2cli"] + cmd[1:], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def score_file(hyp: Path, manifest: Path) -> dict:
    from ds2cli.manifest import read_manifest
    from ds2cli.metrics import score_pairs

    refs = {r["id"]: r["text"] for r in read_manifest(manifest)}
    hyps = {}
    for line in hyp.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "id" in row:
            hyps[row["id"]] = row.get("text", "")
    score = score_pairs([(u, t, hyps.get(u, "")) for u, t in refs.items()], "en")
    return {"wer": score.wer.rate, "cer": score.cer.rate, "utterances": len(refs)}


def evaluate(checkpoint: Path, manifest: Path, out_dir: Path, dev: Path | None = None) -> dict:
    """Greedy and LM WER of a checkpoint on `manifest`; with `dev`, alpha and beta are first tuned on
    it (the held-out train speakers) and the LM row is decoded with them (`lm_tuned`)."""
    result = {}
    for kind, cmd in decode_commands(checkpoint, manifest, out_dir).items():
        start = time.time()
        _ds2cli(cmd)
        result[kind] = {**score_file(Path(cmd[cmd.index("--out") + 1]), manifest), "command": recorded(cmd),
                        "seconds": round(time.time() - start, 1)}
    if dev is not None:
        tune = ["ds2cli", "decode", "--checkpoint", str(checkpoint), "--tune", "--manifest", str(dev), "--quiet",
                "--json"]
        tuned = json.loads(_ds2cli(tune))
        cmd = decode_commands(checkpoint, manifest, out_dir)["lm"]
        cmd = cmd[:cmd.index("--alpha")] + ["--out", str(out_dir / "hyp_lm_tuned.jsonl")]
        _ds2cli(cmd)  # the decoder reads the experiment's tuned alpha and beta
        result["lm_tuned"] = {**score_file(out_dir / "hyp_lm_tuned.jsonl", manifest), "command": recorded(cmd),
                              "tune_command": recorded(tune), "alpha": tuned.get("alpha"), "beta": tuned.get("beta"),
                              "dev_wer": tuned.get("wer")}
    return result


def limited_manifest(manifest: Path, limit: int, out: Path) -> Path:
    """`limit` rows of a manifest spread evenly over it, so over its speakers (0: the manifest itself)."""
    if not limit:
        return manifest
    from ds2cli.manifest import read_manifest, write_manifest

    rows = read_manifest(manifest)
    limit = min(limit, len(rows))
    write_manifest(out, [rows[i * len(rows) // limit] for i in range(limit)])
    return out


def pocketsphinx_rows(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(id, reference, pocketsphinx hypothesis) with its packaged US English model and LM."""
    import numpy as np
    from pocketsphinx import Decoder

    from ds2cli.manifest import read_row_audio
    from ds2cli.text import normalize

    decoder = Decoder()
    out = []
    for row in rows:
        wave = read_row_audio(row, 16000)
        pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16).tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        out.append((row["id"], row["text"], normalize(hyp.hypstr if hyp else "", "en")))
    return out


def run_pocketsphinx(manifest: Path, jobs: int = 1) -> dict:
    """pocketsphinx on a manifest, in `jobs` processes (one decoder each, on interleaved rows)."""
    from concurrent.futures import ProcessPoolExecutor

    from ds2cli.manifest import read_manifest
    from ds2cli.metrics import score_pairs

    start = time.time()
    rows = read_manifest(manifest)
    with ProcessPoolExecutor(jobs) as pool:
        parts = list(pool.map(pocketsphinx_rows, [rows[i::jobs] for i in range(jobs)]))
    found = {p[0]: p for part in parts for p in part}
    pairs = [found[r["id"]] for r in rows]
    score = score_pairs(pairs, "en")
    return {"lm": {"wer": score.wer.rate, "cer": score.cer.rate, "utterances": len(pairs)},
            "seconds": round(time.time() - start, 1), "jobs": jobs, "examples": [list(p) for p in pairs[:3]]}


def write_merged(out: Path, entries: dict) -> None:
    """Update `out` with `entries`, re-read just before writing: configurations run by other
    processes at the same time (one per core) keep their entries."""
    from ds2cli.fileio import write_json

    current = json.loads(out.read_text()) if out.is_file() else {}
    current.pop("command", None)
    write_json(out, stamped({**current, **entries}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    ap.add_argument("--exp-root", type=Path, default=Path("exp"))
    ap.add_argument("--data-dir", default="../shared/data/speechocean762")
    ap.add_argument("--pretrained", default="exp/tiny/checkpoints/best.pt")
    ap.add_argument("--pool-manifest", default="exp/tiny/manifests/train.jsonl")
    ap.add_argument("--pool-weight", type=float, default=1.0,
                    help="pooled: synthetic utterances per speechocean utterance in every epoch.")
    ap.add_argument("--average-last", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0, help="Score N test utterances spread evenly over the split (0: all).")
    ap.add_argument("--jobs", type=int, default=1, help="pocketsphinx processes.")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="Recipe override for every training.")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    best = None
    for config in args.configs:
        if config == "pocketsphinx":
            exp = args.exp_root / "so-scratch"
            if not (exp / "manifests" / "test.jsonl").is_file():
                from ds2cli.data_prep.common import prepare_recipe
                from ds2cli.recipe import load_recipe

                prepare_recipe(load_recipe("speechocean"), exp, data_dir=args.data_dir)
            manifest = limited_manifest(exp / "manifests" / "test.jsonl", args.limit, exp / "test_limited.jsonl")
            results[config] = {**run_pocketsphinx(manifest, args.jobs), "command": command_line() or "python -m "
                               f"benchmarks.realspeech --configs pocketsphinx{f' --limit {args.limit}' if args.limit else ''}"}
            if args.limit:  # the trained models on the same utterances, from their hypotheses on the whole split
                results[config]["models_on_these_utterances"] = {
                    c: {k: score_file(args.exp_root / f"so-{c}" / f"hyp_{k}.jsonl", manifest) for k in ("greedy", "lm")}
                    for c in ("scratch", "finetuned", "pooled") if (args.exp_root / f"so-{c}" / "hyp_lm.jsonl").is_file()}
        elif config == "averaged":
            source = best or min((c for c in ("scratch", "finetuned", "pooled") if c in results),
                                 key=lambda c: results[c]["lm"]["wer"])
            exp = args.exp_root / f"so-{source}"
            out = exp / "checkpoints" / f"avg-last-{args.average_last}.pt"
            cmd = ["ds2cli", "average", str(exp), "--last", str(args.average_last), "--out", str(out)]
            _ds2cli(cmd)
            manifest = limited_manifest(exp / "manifests" / "test.jsonl", args.limit, exp / "test_limited.jsonl")
            hyps = exp / f"avg-last-{args.average_last}"  # beside the hypotheses of the model it averages
            hyps.mkdir(exist_ok=True)
            results[config] = {"of": source, "average_command": recorded(cmd), **evaluate(out, manifest, hyps, exp / "manifests" / "dev.jsonl")}
        else:
            cmd = train_command(config, args.exp_root, args.data_dir, args.pretrained, args.pool_manifest, args.sets,
                                args.pool_weight)
            start = time.time()
            report = json.loads(_ds2cli(cmd))
            exp = args.exp_root / f"so-{config}"
            manifest = limited_manifest(exp / "manifests" / "test.jsonl", args.limit, exp / "test_limited.jsonl")
            results[config] = {"train_command": recorded(cmd), "benchmark_command": command_line(), "train_seconds": round(time.time() - start, 1),
                               "training_seconds": report.get("seconds"), "epochs": report.get("epochs"),
                               "train_utterances": report.get("train_utterances"),
                               "best_dev_wer": report.get("best_dev_wer"), "best_dev_cer": report.get("best_dev_cer"),
                               "history": report.get("history"),
                               **evaluate(exp / "checkpoints" / "best.pt", manifest, exp, exp / "manifests" / "dev.jsonl")}
            if best is None or results[config]["lm"]["wer"] < results[best]["lm"]["wer"]:
                best = config
        print(json.dumps({config: results[config]}, indent=1))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        results["machine"] = {"python": sys.version.split()[0], "platform": platform.platform(),
                              "threads": os.cpu_count()}
        results.pop("command", None)  # the command of this run, not of the one that wrote the file first
        write_merged(args.out, {config: results[config], "machine": results["machine"]})


if __name__ == "__main__":
    main()
