"""Convergence of the small recipes on this CPU: train each (preparing its data first), then greedy
WER/CER of the best checkpoint on the test split (never seen in training), with wall times.

    python -m benchmarks.train_convergence [--recipes tiny digits arctic] [--exp-root exp] [--data-root DIR]

The recipes on recorded corpora read them from --data-root (fsdd/ and arctic-cathy/ inside it).

Runs one recipe at a time (they share the CPU). Results: benchmarks/results/train_convergence.json."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.paths import stamped

RESULTS = Path(__file__).resolve().parent / "results"
CORPUS_FOLDERS = {"digits": "fsdd", "arctic": "arctic-cathy"}  # under --data-root
TARGETS = {"tiny": 0.10, "digits": 0.02, "arctic": None}  # greedy test WER the project aims for


def greedy_test_score(checkpoint: Path, manifest: Path) -> dict:
    """Greedy WER/CER of a checkpoint on a manifest (through the shared Recognizer)."""
    from ds2cli.audio import read_audio
    from ds2cli.ctc import greedy_ids
    from ds2cli.inference import Recognizer
    from ds2cli.manifest import read_manifest
    from ds2cli.metrics import score_pairs

    rec = Recognizer.from_checkpoint(checkpoint)
    rows = read_manifest(manifest)
    waves = [read_audio(r["audio_filepath"], rec.feature_config.sample_rate, r.get("offset") or 0.0,
                        r["duration"] if r.get("offset") else None) for r in rows]
    emissions = rec.emissions(waves)
    pairs = [(r["id"], r["text"], rec.tokenizer.decode(greedy_ids(e))) for r, e in zip(rows, emissions)]
    score = score_pairs(pairs, rec.tokenizer.language)
    return {"test_wer": score.wer.rate, "test_cer": score.cer.rate, "test_utterances": len(rows),
            "examples": [list(p) for p in pairs[:5]]}


def run(recipe_name: str, exp_root: Path, overrides: list[str], data_dir: str | None = None) -> dict:
    from ds2cli.data_prep.common import prepare_recipe
    from ds2cli.recipe import load_recipe
    from ds2cli.trainer import train

    recipe = load_recipe(recipe_name, overrides)
    exp = exp_root / recipe["name"]
    t0 = time.time()
    prep = prepare_recipe(recipe, exp, data_dir=data_dir)
    t1 = time.time()
    report = train(recipe, exp, log=print)
    t2 = time.time()
    score = greedy_test_score(Path(report.best_checkpoint), exp / "manifests" / "test.jsonl")
    row = {"recipe": recipe_name, "overrides": overrides, "prepare_seconds": round(t1 - t0, 1),
           "train_seconds": round(t2 - t1, 1), "score_seconds": round(time.time() - t2, 1),
           "train_hours": prep.splits["train"]["hours"], "epochs": report.epochs, "steps": report.steps,
           "best_dev_wer": report.best_dev_wer, "best_dev_cer": report.best_dev_cer,
           "audio_s_per_s": round(report.audio_seconds_per_second, 2), "target_wer": TARGETS.get(recipe_name),
           **score}
    print(json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=["tiny", "digits", "arctic"])
    ap.add_argument("--exp-root", default="exp")
    ap.add_argument("--data-root", default="../shared/data", help="folder holding fsdd/ and arctic-cathy/")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    ap.add_argument("--out", default=str(RESULTS / "train_convergence.json"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    for name in args.recipes:
        folder = CORPUS_FOLDERS.get(name)
        results[name] = run(name, Path(args.exp_root), args.overrides,
                            str(Path(args.data_root) / folder) if folder else None)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(stamped(results), indent=2) + "\n")  # after each recipe: partial runs count
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
