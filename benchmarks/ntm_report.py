"""Write benchmarks/results/ntm.md (the README's NTM section) from the ntm_*.json results.

    python -m benchmarks.ntm_report
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from ds2cli.fileio import write_text

RESULTS = Path("benchmarks/results")
TASK_ORDER = ["copy", "repeat-copy", "associative-recall", "ngrams", "priority-sort"]


def _load(name: str):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def speed_section() -> list[str]:
    res = _load("ntm_speed.json")
    if not res:
        return ["Speed: not measured yet (`python -m benchmarks.ntm_speed --peer /tmp/pytorch-ntm`).", ""]
    lines = ["### Training speed against pytorch-ntm (copy task, same configuration, one run)", "",
             f"Torch threads: {res['torch_threads']} for both; {res['results'][0]['rounds']} alternating rounds, "
             f"median. Load average at the end: {', '.join(f'{v:.1f}' for v in res['load_average_at_end'])}.", "",
             "| batch | ds2cli ms/seq | pytorch-ntm ms/seq | speed-up (same batch) | ds2cli vs pytorch-ntm at batch 1 |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for r in res["results"]:
        lines.append(f"| {r['batch_size']} | {r['ours_ms_per_sequence']:.2f} | {r.get('peer_ms_per_sequence', float('nan')):.2f} "
                     f"| {r.get('speedup', float('nan')):.1f}x | {r.get('speedup_vs_peer_batch1', float('nan')):.1f}x |")
    for run in res.get("earlier_runs", []):
        lines.append("") if run is res["earlier_runs"][0] else None
        lines.append(f"Earlier run ({run['when']}): " + ", ".join(
            f"batch {r['batch_size']} {r['speedup']:.1f}x" for r in run["results"]) + ".")
    if res.get("note"):
        lines += ["", res["note"]]
    lines += ["", f"_{res['caveat']}_", ""]
    return lines


def convergence_rows() -> list[str]:
    lines = ["| task | model | training | seeds | sequences | train time s (median) | converged at (median) "
             "| test length | cost bits/seq (median) | bit errors/seq (median) | per seed bit errors "
             "| sequences without error (median) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("ntm_convergence_*.json"))]
    results.sort(key=lambda r: (TASK_ORDER.index(r["task"]), r["model"] != "ntm", bool(r["args"].get("no_lr_drop"))))
    for res in results:
        s = res["summary"]
        model = res["model"] + (f"-{res['controller']}" if res.get("controller") else "")
        conv = s["median_converged_at_sequences"]
        conv_text = f"{conv:,.0f}" if conv is not None else f"{s['converged_seeds']}/{s['seeds']} seeds"
        a = res["args"]
        lr = a.get("lr") or res["per_seed"][0]["lr"]
        training = f"batch {a['batch_size']}, lr {lr:g}" + (", no lr drop" if a.get("no_lr_drop") else "")
        first = True
        for length, t in s["test_median"].items():
            opt = f" (optimal {t['optimal_cost']:.2f})" if t.get("optimal_cost") is not None else ""
            per_seed = ", ".join(f"{v:.2f}" for v in t["bit_errors_per_seed"])
            secs = statistics.median(r["train_seconds"] for r in res["per_seed"])
            head = (f"| {res['task']} | {model} | {training} | {s['seeds']} | {a['sequences']:,} | {secs:.0f} "
                    f"| {conv_text} " if first else "| | | | | | | ")
            perfect = statistics.median(x["perfect"] for r in res["per_seed"] for x in r["test"] if x["length"] == length)
            lines.append(f"{head}| {length} | {t['cost']:.2f}{opt} | {t['bit_errors']:.2f} | {per_seed} | {perfect:.0%} |")
            first = False
    return lines


STATUS = """### Against the targets (this session's runs)

- Copy, < 0.1 bit errors per sequence on lengths 1-20 within 20,000 sequences: met, median 8,928
  sequences over 3 seeds (13,888 / 8,928 / 7,936). On the fixed test sets at length 20 and 30 one
  sequence in 100 still fails globally in two of three seeds (median 0.68 and 1.03 bit errors per
  sequence, 99% of sequences perfect).
- Copy at length 120 (100 sequences): median 14.05 bit errors per sequence with the default training,
  5.32 without the learning-rate drop; 96-97% of sequences are copied perfectly and the errors come
  from a few sequences that fail as a whole (the paper's "global error"). Zero was not reached.
- NTM against the LSTM baseline at copy lengths 30, 50, 120: 1.03 / 0.10 / 14.05 against
  109 / 192 / 476 bit errors per sequence. The baseline (3 x 256, 40,000 sequences, lr 3e-4, 10x the
  paper's) did not learn even the training lengths in that budget, so this shows the NTM's speed of
  learning more than the LSTM's failure to generalise.
- Associative recall (feedforward NTM, 4 heads): converged within 30,000 episodes (at 16,864);
  generalises to 12 and 15 items with 0.03 and 0.12 bit errors per sequence. One seed only.
- Dynamic N-grams: only 8,000 training sequences were run (one seed): 180.9 bits per sequence against
  the optimal estimator's 127.3 on the same 1,000 sequences, a 53.6-bit gap: the target (about 2 bits)
  was not reached; the default run is 20,000 sequences and was not run.
- Repeat copy, priority sort (and its LSTM baseline): not run in this session.
- Speed: 2.5-3.0x pytorch-ntm at batch 1 over three runs (target 3x: not reliably met); 4-6x at equal
  batch size, ~27x (batch 16) and ~41x (batch 64) against the peer's batch-1 training.
- Time: copy default run 3-5 minutes, associative recall 11 minutes, on the loaded machine; other
  tasks estimated from per-step times at 10-20 minutes, not measured end to end.

""".splitlines()

REPRODUCE = """### How `ds2cli ntm` trains (and where it departs from the paper)

- Model as in §3: per-head content, interpolation, circular shift (-1, 0, +1) and sharpening; erase then
  add; memory 128 x 20 starting at the constant 1e-6; learned initial weightings (focused on row 0) and
  read vectors. All heads address the previous memory; reads feed the output and the next controller step.
  The paper's sizes per task (Tables 1-3) are the defaults for `--controller lstm|ff` and `--model lstm`.
- Cost is the paper's: cross-entropy in bits summed over a sequence's output bits; RMSProp with
  momentum 0.9, every gradient component clipped to [-10, 10], and Graves's denominator floor
  (eps 1e-2; torch's default 1e-8 made solved models blow up on the next loss spike).
- Departures, for speed on a CPU: batches of 16 sequences at lr 3e-4 (copy, repeat copy, recall) instead
  of one sequence at 1e-4; the learning rate drops 10x once validation bit errors fall below 1 per
  sequence (without it every copy seed solved the task and later collapsed: see the "no lr drop" row);
  the best checkpoint by validation (copy: lengths 1-20 plus length 50, seeds other than the test's)
  is kept. `--batch-size 1 --lr 1e-4` gives the paper's exact setting.

### Reproduce

```sh
# speed, side by side with a local copy of loudinthecloud/pytorch-ntm (not part of this repository)
git clone https://github.com/loudinthecloud/pytorch-ntm /tmp/pytorch-ntm
python -m benchmarks.ntm_speed --peer /tmp/pytorch-ntm            # -> results/ntm_speed.json
# convergence, median over seeds (defaults: the CLI's training settings per task)
python -m benchmarks.ntm_convergence --task copy --seeds 3
python -m benchmarks.ntm_convergence --task copy --model lstm --seeds 1 --sequences 40000 --lr 3e-4
python -m benchmarks.ntm_convergence --task associative-recall --controller ff --seeds 3
python -m benchmarks.ntm_convergence --task repeat-copy --seeds 3
python -m benchmarks.ntm_convergence --task ngrams --seeds 3
python -m benchmarks.ntm_convergence --task priority-sort --seeds 3
python -m benchmarks.ntm_convergence --task priority-sort --model lstm --seeds 3
python -m benchmarks.ntm_report                                   # -> results/ntm.md
# the same from the CLI, with figures like the paper's Figs. 6 and 8
ds2cli ntm copy --plot figs/
ds2cli ntm copy --checkpoint exp/ntm/copy-ntm-lstm/best.pt --eval-only --eval-len 120 --json
```
""".splitlines()


def main() -> None:
    lines = ["## Neural Turing Machines (`ds2cli ntm`)", "",
             "Results of `benchmarks/ntm_*.py` on this project's 2-core CPU (shared; see caveats). "
             "Bit errors and cost are per sequence, on 100 fixed test sequences per length "
             "(1,000 for n-grams), for the best checkpoint by validation (validation sets use other seeds). "
             "\"Converged at\": first validation (every ~1,000 sequences) with fewer than 0.1 bit errors "
             "per sequence on the training distribution. Train time includes validation, on the shared, "
             "loaded machine (load average 7-10 during these runs).", ""]
    lines += speed_section()
    lines += ["### Convergence and generalisation", ""] + convergence_rows() + [""]
    ran = {json.loads(p.read_text())["task"] for p in RESULTS.glob("ntm_convergence_*_ntm_*.json")}
    missing = [t for t in TASK_ORDER if t not in ran]
    if missing:
        lines += [f"Not run yet (no result files): NTM convergence on {', '.join(missing)}. "
                  "The commands below run them.", ""]
    lines += STATUS + REPRODUCE
    write_text(RESULTS / "ntm.md", "\n".join(lines) + "\n")
    print((RESULTS / "ntm.md").read_text())


if __name__ == "__main__":
    main()
