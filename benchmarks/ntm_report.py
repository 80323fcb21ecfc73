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
             f"median. Measured {res.get('date', '(date not recorded)')}; load average at the end "
             f"{', '.join(f'{v:.1f}' for v in res['load_average_at_end'])} (this run and the other core's job). "
             "Two earlier runs today at batch 1: 3.2x (this code) and 3.4x (with the since-dropped fused memory step).", "",
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
    lines = ["| task | model | training | seeds | sequences | train CPU s (median) | converged at (median) "
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
        training = (f"batch {a['batch_size']}, lr {lr:g}" + (f", eps {a['eps']:g}" if a.get("eps") else "")
                    + (", no lr drop" if a.get("no_lr_drop") else "")
                    + (", stop when converged" if a.get("stop_when_converged") else ""))
        first = True
        for length, t in s["test_median"].items():
            opt = f" (optimal {t['optimal_cost']:.2f})" if t.get("optimal_cost") is not None else ""
            per_seed = ", ".join(f"{v:.2f}" for v in t["bit_errors_per_seed"])
            cpu = [r.get("train_cpu_seconds") for r in res["per_seed"]]
            # Runs from before this machine was idle recorded only (inflated) wall time: not shown.
            secs = f"{statistics.median(cpu):.0f}" if None not in cpu else "n/a (loaded machine)"
            head = (f"| {res['task']} | {model} | {training} | {s['seeds']} | {a['sequences']:,} | {secs} "
                    f"| {conv_text} " if first else "| | | | | | | ")
            perfect = statistics.median(x["perfect"] for r in res["per_seed"] for x in r["test"] if x["length"] == length)
            lines.append(f"{head}| {length} | {t['cost']:.2f}{opt} | {t['bit_errors']:.2f} | {per_seed} | {perfect:.0%} |")
            first = False
    return lines


STATUS = """### Against the targets (measured 2026-11-28, idle 2-core machine)

- Copy, < 0.1 bit errors per sequence on lengths 1-20 within 20,000 sequences: met on the validation
  set (lengths 1-20 drawn like the training data): median 10,912 sequences over 3 seeds (13,888 / 10,912
  / 7,440). On the fixed test set at exactly length 20, two of three seeds still fail one sequence in
  100 as a whole (median 0.69 bit errors per sequence; 99-100% of sequences perfect).
- Copy at length 120 (100 sequences): median 10.11 bit errors per sequence with the default training
  (10.11 / 9.70 / 14.26; 63-97% of sequences perfect); without the learning-rate drop (same selection) median 4.82 (0.94 / 5.32 / 4.82; the best seed had
  only local errors, at most 7 bits in a sequence), and that variant was as good or better at every
  length (median 0.16 / 0.02 / 0.00 at 20 / 30 / 50), as in the earlier session: it should become
  copy's default (not changed here). Zero was not reached. Tried in this
  session: choosing the checkpoint by a length-120 validation set (default now; it was length 50) and
  training without the learning-rate drop. The errors are whole-sequence ("global") failures, and they
  are not random: in a probe model, 5 of the 11 failed length-20 test sequences contained an all-zero
  8-bit vector, which only 7.5% of length-20 sequences do (plausibly because its row is the hardest to
  tell apart by cosine similarity). Not tried for lack of time: curriculum on lengths, training beyond
  length 20.
- NTM against the LSTM baseline at copy lengths 30, 50, 120: median 1.03 / 0.07 / 10.11 bit errors per
  sequence against 83.9 / 164.1 / 449.2 for the LSTM (chance is 4 bits per vector: 120 / 200 / 480). The
  LSTM (3 x 256, the paper's size; lr 1e-3, batch 64, eps 1e-8, 150,000 sequences, 1 seed, 7.5 CPU
  minutes) only partly learned the training lengths (8.7 and 43.2 bit errors at lengths 10 and 20), as
  in the paper, where it was still above 2 bits after a million sequences; so the comparison shows the
  NTM learning and generalising where the LSTM does neither, not the LSTM failing only beyond length 20.
- Associative recall (feedforward NTM, 4 heads, 30,000 episodes): 2 of 3 seeds converged (at 10,912
  and 29,760 episodes); the third stayed at ~3.6 bit errors. Median test bit errors per sequence: 0.38
  at 6 items, 1.33 at 12, 2.04 at 15 (best seed: 0.07 / 1.33 / 1.26): near zero for two seeds, not for
  the median; generalisation to 12 and 15 items is partial.
- Repeat copy: converged within 100,000 sequences in 3 of 3 seeds (at 64,000 / 54,000 / 46,000; median
  54,000; runs stopped at convergence). At the training maximum (10 x 10) median 0.47 bit errors per
  sequence; the just-converged models do not generalise: median 288 bit errors at 10 x 20 and 194 at
  20 x 10 (best seed 119 and 8.9). The paper's model generalised to both (with end-marker errors).
- Dynamic N-grams (20,000 sequences, the default): not met. 175.7 bits per sequence (median of 2
  seeds: 175.9, 175.5) against the Bayes-optimal estimator's 127.3 on the same 1,000 sequences: a 48-bit
  gap, against the paper's ~2. Learning is slow and steady (validation 181 -> 174 bits over the run);
  lr 3e-4 and 1e-3 were no better over 3,000 sequences. A third seed was not run for lack of time.
- Priority sort (20,000 sequences): NTM cost 125.1 bits per sequence (median of 3 seeds, 55.2 bit
  errors) against 128.0 (64.1) for the LSTM baseline (3 x 128, same lr 1e-4 and batch); chance is
  128 bits. Both have barely started to learn in this budget (the paper trained for millions).
- Speed: 3.3x pytorch-ntm at batch 1 in the recorded run (14.0 against 46.2 ms per
  sequence), 3.2x and 3.4x in two earlier runs today: at least 3x in every run, with a small margin.
  4.5x and 5.3x at equal batch sizes 16 and 64, 24x and 39x against the peer's usual batch-1 training.
  A fused memory step (one autograd Function with a hand-written backward) and a fused LSTM step were
  built, matched autograd to 1e-16, and gave no measurable gain (the per-step cost is ATen op dispatch,
  not autograd bookkeeping), so they were dropped; torch.compile of the whole step gave 1.4x at batch 1
  but took ~40 s to compile per batch size and recompiled on stride and requires-grad changes, so it
  was not adopted.
- Time: every task's default training run finishes well within 30 minutes on this CPU (CPU seconds for
  training plus validation, one core, one thread, per seed): copy 92 s (20,000 sequences), associative
  recall 181-195 s (30,000), priority sort 185-195 s (20,000; LSTM baseline 17 s), n-grams 400-426 s
  (20,000), repeat copy 390-554 s to convergence at 46,000-64,000 sequences, 8.6 ms per sequence, so
  about 14 minutes for the full default 100,000.

""".splitlines()

REPRODUCE = """### How `ds2cli ntm` trains (and where it departs from the paper)

- Model as in §3: per-head content, interpolation, circular shift (-1, 0, +1) and sharpening; erase then
  add; memory 128 x 20 starting at the constant 1e-6; learned initial weightings (focused on row 0) and
  read vectors. All heads address the previous memory; reads feed the output and the next controller step.
  The paper's sizes per task (Tables 1-3) are the defaults for `--controller lstm|ff` and `--model lstm`.
- Cost is the paper's: cross-entropy in bits summed over a sequence's output bits; RMSProp with
  momentum 0.9, every gradient component clipped to [-10, 10], and Graves's denominator floor
  (eps 1e-2; torch's default 1e-8 made solved NTMs blow up on the next loss spike).
- Departures, for speed on a CPU: batches of 16 sequences at lr 3e-4 (copy, repeat copy, recall; 1e-4
  for n-grams and sorting) instead of one sequence at 1e-4 / 3e-5; the learning rate drops 10x once
  validation bit errors fall below 1 per sequence; the best checkpoint by validation is kept (copy: lengths
  1-20 plus length 120, validation seeds other than the test's). `--batch-size 1 --lr 1e-4` gives the
  paper's exact setting.
- The LSTM baseline row for copy uses lr 1e-3, batch 64 and RMSProp eps 1e-8: with the NTM's eps 1e-2
  floor and lr 3e-4 it had not started to learn after 40,000 sequences.

### Reproduce

```sh
# speed, side by side with a local copy of loudinthecloud/pytorch-ntm (not part of this repository)
git clone https://github.com/loudinthecloud/pytorch-ntm /tmp/pytorch-ntm
taskset -c 1 python -m benchmarks.ntm_speed --peer /tmp/pytorch-ntm --rounds 5   # -> results/ntm_speed.json
# convergence, median over seeds (defaults: the CLI's training settings per task)
python -m benchmarks.ntm_convergence --task copy --seeds 3 --eval-every 500
python -m benchmarks.ntm_convergence --task copy --seeds 3 --eval-every 500 --no-lr-drop \\
    --out benchmarks/results/ntm_convergence_copy_ntm_lstm_no_lr_drop.json
python -m benchmarks.ntm_convergence --task copy --model lstm --seeds 1 --sequences 150016 --batch-size 64 \\
    --eval-every 10048 --lr 1e-3 --eps 1e-8
python -m benchmarks.ntm_convergence --task associative-recall --controller ff --seeds 3
python -m benchmarks.ntm_convergence --task priority-sort --seeds 3
python -m benchmarks.ntm_convergence --task priority-sort --model lstm --seeds 3 --lr 1e-4
# one seed per process, then merged (S = 0, 1, 2)
python -m benchmarks.ntm_convergence --task repeat-copy --first-seed S --seeds 1 --stop-when-converged \\
    --eval-every 2000 --out rc_sS.json
python -m benchmarks.ntm_convergence --task ngrams --first-seed S --seeds 1 --eval-every 5000 --out ng_sS.json
python -m benchmarks.ntm_convergence --merge rc_s0.json rc_s1.json rc_s2.json \\
    --out benchmarks/results/ntm_convergence_repeat_copy_ntm_lstm.json
python -m benchmarks.ntm_report                                   # -> results/ntm.md
# the same from the CLI, with figures like the paper's Figs. 6 and 8
ds2cli ntm copy --plot figs/
ds2cli ntm copy --checkpoint exp/ntm/copy-ntm-lstm/best.pt --eval-only --eval-len 120 --json
```
""".splitlines()


def main() -> None:
    lines = ["## Neural Turing Machines (`ds2cli ntm`)", "",
             "Results of `benchmarks/ntm_*.py`, measured 2026-11-28 on this project's idle 2-core CPU "
             "(one other training job on the other core), each run pinned to one core (`taskset -c 1`) "
             "with one torch thread. These replace the numbers of the earlier session, which ran on an "
             "overloaded machine (10-100x slower). Bit errors and cost are per sequence, on 100 fixed test "
             "sequences per length (1,000 for n-grams), for the best checkpoint by validation (validation "
             "sets use other seeds than the tests). \"Converged at\": first validation (every 500-5,000 "
             "sequences, see the commands) with fewer than 0.1 bit errors per sequence on the training "
             "distribution. Train CPU s: the process's CPU time for training and validation (wall time "
             "was the same but for pauses).", ""]
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
