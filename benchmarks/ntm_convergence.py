"""Convergence of ds2cli's NTM (or the LSTM baseline) on the paper's tasks, over several seeds.

For each seed: train for a budget of sequences, validating every --eval-every sequences on a
fixed validation set from the training distribution (and, with --select-len, one longer length;
validation sets use other seeds than the test sets). Record the learning curve, the first point
where validation bit errors per sequence fall below --threshold, and evaluate the best
checkpoint (lowest validation cost) at the task's test lengths. Report the median over seeds.

    python -m benchmarks.ntm_convergence --task copy --seeds 3
    python -m benchmarks.ntm_convergence --task copy --model lstm --seeds 1 --sequences 20000
    python -m benchmarks.ntm_convergence --merge seed0.json seed1.json seed2.json --out all.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.paths import shown, stamped
from ds2cli.fileio import write_json
from ds2cli.ntm.machine import WRITE_INITS
from ds2cli.ntm.run import (DEFAULT_EVAL_SEQUENCES, DEFAULT_TRAINING, NO_LR_DROP, NTM_MODEL_DEFAULTS,
                            NTM_TRAIN_DEFAULTS, SELECT_LEN)
from ds2cli.ntm.tasks import TASKS
from ds2cli.ntm.fit import (LR_SCHEDULES, NTMTrainConfig, evaluate, maybe_drop_lr, maybe_roll_back, new_run,
                            paper_configs, save_ntm_checkpoint, snapshot, fit)

LOAD_CAVEAT = ("Run on an idle 2-core CPU, pinned to one core (taskset -c 1) with one torch thread; "
               "train_cpu_seconds is this process's CPU time (unaffected by other jobs), train_seconds wall time.")

def run_seed(args, seed: int) -> dict:
    task = TASKS[args.task]()
    model_cfg, paper_lr = paper_configs(task, args.model, args.controller)
    lr = args.lr or paper_lr
    extra = {"eps": args.eps} if args.eps is not None else {}
    if args.model == "ntm":  # main() filled in the task's defaults (NTM_MODEL/TRAIN_DEFAULTS)
        model_cfg.memory_rows = args.memory_rows
        if args.write_init is not None:
            model_cfg.write_init = args.write_init
    extra.update({k: getattr(args, k) for k in ("lr_schedule", "lr_final", "decay_at", "rollback_above")
                  if getattr(args, k) is not None})
    cfg = NTMTrainConfig(steps=args.sequences // args.batch_size, batch_size=args.batch_size, lr=lr, seed=seed, **extra,
                      checkpoint_every=10 ** 9, lr_drop_below=None if args.no_lr_drop else 1.0)
    run = new_run(task, model_cfg, cfg)
    val_seed = 50_000 + seed  # validation sets differ from the test sets (eval seed 1)
    chunk = max(1, args.eval_every // args.batch_size)
    curve, best, best_state, converged_at = [], None, None, None
    t0, c0 = time.perf_counter(), time.process_time()
    while run.step < cfg.steps:
        fit(run, min(chunk, cfg.steps - run.step))
        val = evaluate(run.model, task, None, args.val_sequences, seed=val_seed)
        point = {"sequences": run.step * cfg.batch_size, "seconds": round(time.perf_counter() - t0, 1),
                 "val_cost": val.cost, "val_bit_errors": val.bit_errors, "lr": run.optimizer.param_groups[0]["lr"]}
        score = val.cost
        if args.select_len:
            long = evaluate(run.model, task, args.select_len, args.val_sequences, seed=val_seed)
            point.update(select_cost=long.cost, select_bit_errors=long.bit_errors)
            score += long.cost
        if maybe_roll_back(run, score, best and best["score"], best_state):
            point["rolled_back"] = True  # collapsed: back to the best weights, half the learning rate
            print(f"[{args.task} {args.model} seed {seed}] {point}", flush=True)
            curve.append(point)
            continue
        if maybe_drop_lr(run, val.bit_errors):
            point["lr_dropped"] = True
        curve.append(point)
        if converged_at is None and val.bit_errors < args.threshold:
            converged_at = point["sequences"]
        if best is None or score < best["score"]:
            best = {"score": score, **point}
            best_state = snapshot(run)
        print(f"[{args.task} {args.model} seed {seed}] {point}", flush=True)
        if converged_at is not None and args.stop_when_converged:
            break
    train_seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0  # this process's CPU time: unaffected by other jobs
    run.model.load_state_dict(best_state["model"])
    if args.save_dir:  # the best model, for inspection (ds2cli ntm TASK --checkpoint C --eval-only)
        save_ntm_checkpoint(run, Path(args.save_dir) / f"{args.task}_{args.model}_seed{seed}.pt")
    n_eval = DEFAULT_EVAL_SEQUENCES.get(task.name, 100)
    lengths = [task.parse_length(v) for v in args.eval_len] if args.eval_len else list(task.default_eval)
    tests = [asdict(evaluate(run.model, task, length, n_eval, seed=1)) for length in lengths]
    for t in tests:
        print(f"[{args.task} {args.model} seed {seed}] test {t}", flush=True)
    return {"seed": seed, "lr": lr, "batch_size": cfg.batch_size, "sequences_trained": run.step * cfg.batch_size,
            "train_seconds": round(train_seconds, 1),
            "train_cpu_seconds": round(cpu_seconds, 1), "converged_at_sequences": converged_at,
            "lr_dropped_at_sequences": run.lr_dropped_at * cfg.batch_size if run.lr_dropped_at else None,
            "rolled_back_at_sequences": [step * cfg.batch_size for step in run.rollbacks],
            "best": best, "test": tests, "curve": curve, "model": model_cfg.to_dict()}


def summarise(per_seed: list[dict]) -> dict:
    """Medians over seeds of the convergence point and every test metric."""
    conv = [r["converged_at_sequences"] for r in per_seed]
    out = {"seeds": len(per_seed), "converged_seeds": sum(c is not None for c in conv),
           "converged_at_sequences": conv,
           "median_converged_at_sequences": statistics.median(conv) if all(c is not None for c in conv) else None}
    tests = {}
    for r in per_seed:
        for t in r["test"]:
            row = tests.setdefault(t["length"], {"cost": [], "bit_errors": [], "optimal_cost": t["optimal_cost"]})
            row["cost"].append(t["cost"])
            row["bit_errors"].append(t["bit_errors"])
    out["test_median"] = {length: {"cost": statistics.median(v["cost"]), "bit_errors": statistics.median(v["bit_errors"]),
                                   "cost_per_seed": v["cost"], "bit_errors_per_seed": v["bit_errors"],
                                   "optimal_cost": v["optimal_cost"]} for length, v in tests.items()}
    return out


def merge(paths: list[str], out_path: str) -> dict:
    """Combine result files of single-seed runs (--first-seed N --seeds 1) of one configuration."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    keys = {(r["task"], r["model"], r["controller"]) for r in runs}
    if len(keys) != 1:
        raise SystemExit(f"--merge: results of different configurations {sorted(keys)}")
    per_seed = sorted((s for r in runs for s in r["per_seed"]), key=lambda s: s["seed"])
    result = dict(runs[0], per_seed=per_seed, summary=summarise(per_seed), merged_from=[r["command"] for r in runs],
                  wall_seconds=round(sum(r["wall_seconds"] for r in runs), 1))
    result["args"] = dict(result["args"], seeds=len(per_seed), first_seed=per_seed[0]["seed"])
    write_json(out_path, stamped(result))
    print(f"wrote {out_path}")
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="combine these single-seed result files (same configuration) into --out")
    ap.add_argument("--task", choices=sorted(TASKS), default="copy")
    ap.add_argument("--model", choices=["ntm", "lstm"], default="ntm")
    ap.add_argument("--controller", choices=["lstm", "ff"], default="lstm")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--sequences", type=int, default=None, help="training budget in sequences")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None, help="default: the CLI's (ds2cli.ntm.run.DEFAULT_TRAINING)")
    ap.add_argument("--eps", type=float, default=None, help="RMSProp denominator floor (default: NTMTrainConfig's)")
    ap.add_argument("--lr-schedule", choices=list(LR_SCHEDULES), default=None,
                    help="default: the task's (ds2cli.ntm.run.NTM_TRAIN_DEFAULTS) or NTMTrainConfig's (constant)")
    ap.add_argument("--lr-final", type=float, default=None,
                    help="cosine: final lr, step: lr after --decay-at, as a fraction of --lr")
    ap.add_argument("--decay-at", type=float, default=None, help="step: fraction of the run at which lr drops")
    ap.add_argument("--write-init", choices=list(WRITE_INITS), default=None,
                    help="NTM write heads' initial addressing (default: the task's, else free)")
    ap.add_argument("--memory-rows", type=int, default=128, help="NTM memory rows")
    ap.add_argument("--rollback-above", type=float, default=None,
                    help="roll back to the best weights when validation cost exceeds the best by this many bits")
    ap.add_argument("--eval-every", type=int, default=1000, help="sequences between validations")
    ap.add_argument("--val-sequences", type=int, default=100)
    ap.add_argument("--select-len", type=int, default=None, help="also validate at this length to pick the best")
    ap.add_argument("--threshold", type=float, default=0.1, help="converged: validation bit errors below this")
    ap.add_argument("--stop-when-converged", action="store_true")
    ap.add_argument("--no-lr-drop", action="store_true", default=None,
                    help="keep the learning rate (no drop once solved) [default: the CLI's per task]")
    ap.add_argument("--lr-drop", dest="no_lr_drop", action="store_false", help="drop it 10x once solved")
    ap.add_argument("--eval-len", action="append", default=None, help="test lengths (default: the task's)")
    ap.add_argument("--save-dir", default=None, help="write each seed's best model here as a checkpoint")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out or "merged.json")
    steps, batch, lr = DEFAULT_TRAINING[args.task]  # the CLI's defaults
    args.batch_size = args.batch_size or batch
    args.sequences = args.sequences or steps * batch
    if args.lr is None and args.model == "ntm":
        args.lr = lr  # the LSTM baseline keeps the paper's rate unless --lr is given
    if args.no_lr_drop is None:
        args.no_lr_drop = args.model == "ntm" and args.task in NO_LR_DROP
    if args.select_len is None and args.model == "ntm":
        args.select_len = SELECT_LEN.get(args.task)
    if args.model == "ntm":  # the task's settings beyond the paper's, recorded in the command and args
        for name, value in {**NTM_MODEL_DEFAULTS.get(args.task, {}), **NTM_TRAIN_DEFAULTS.get(args.task, {})}.items():
            if getattr(args, name, None) is None:
                setattr(args, name, value)
    torch.set_num_threads(1)
    name = f"ntm_convergence_{args.task}_{args.model}" + (f"_{args.controller}" if args.model == "ntm" else "")
    out_path = args.out or f"benchmarks/results/{name.replace('-', '_')}.json"
    t0 = time.perf_counter()
    per_seed = [run_seed(args, seed) for seed in range(args.first_seed, args.first_seed + args.seeds)]
    result = {"benchmark": "ntm_convergence", "task": args.task, "model": args.model,
              "controller": args.controller if args.model == "ntm" else None,
              "command": "python -m benchmarks.ntm_convergence " + " ".join(
                  f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in vars(args).items()
                  if v not in (None, False) and k not in ("out", "save_dir")),
              "args": {k: shown(v) if k in ("out", "save_dir") and v else v for k, v in vars(args).items()},
              "torch_threads": 1, "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "load_average_at_end": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "wall_seconds": round(time.perf_counter() - t0, 1),
              "caveat": LOAD_CAVEAT, "summary": summarise(per_seed), "per_seed": per_seed}
    write_json(out_path, stamped(result))
    print(f"wrote {out_path}")
    return result


if __name__ == "__main__":
    main()
