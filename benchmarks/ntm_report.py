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
    results.sort(key=lambda r: (TASK_ORDER.index(r["task"]), r["model"] != "ntm", not r["args"].get("no_lr_drop")))
    for res in results:
        s = res["summary"]
        model = res["model"] + (f"-{res['controller']}" if res.get("controller") else "")
        # Median over seeds, a seed that did not converge counting as never: it exists if most did.
        at = statistics.median(float("inf") if c is None else c for c in s["converged_at_sequences"])
        seeds = f"{s['converged_seeds']}/{s['seeds']} seeds"
        conv_text = (seeds if at == float("inf") else f"{at:,.0f}" if s["converged_seeds"] == s["seeds"]
                     else f"{at:,.0f} ({seeds})")
        a = res["args"]
        lr = a.get("lr") or res["per_seed"][0]["lr"]
        training = (f"batch {a['batch_size']}, lr {lr:g}" + (f", eps {a['eps']:g}" if a.get("eps") else "")
                    + (", no lr drop" if a.get("no_lr_drop") else ", lr drop" if res["model"] == "ntm" else "")
                    + (", stop when converged" if a.get("stop_when_converged") else "")
                    + (f", cosine to {a.get('lr_final') or 0:g}x" if a.get("lr_schedule") == "cosine" else "")
                    + (f", lr x{a['lr_final']:g} from {a['decay_at']:.0%} of the run" if a.get("lr_schedule") == "step" else "")
                    # Results from before the option existed had the free initialisation.
                    + (f", {a.get('write_init') or 'free'} write init" if res["model"] == "ntm" else "")
                    + (f", roll-back at {a['rollback_above']:g} bits" if a.get("rollback_above") else "")
                    + (f", memory {a['memory_rows']} x 20" if a.get("memory_rows") not in (None, 128) else ""))
        first = True
        for length, t in s["test_median"].items():
            opt = ""
            if t.get("optimal_cost") is not None:  # n-grams: the cost is the score, so give it per seed
                opt = (f" (optimal {t['optimal_cost']:.2f}; per seed "
                       + ", ".join(f"{v:.2f}" for v in t["cost_per_seed"]) + ")")
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
  set (lengths 1-20 drawn like the training data): median 9,176 sequences over 6 seeds (13,392 / 8,928
  / 7,440 / 9,424 / not within 20,000 / 8,928) with the default training (no learning-rate drop since
  2026-11-28 evening). On the fixed test set at exactly length 20, median 0.08 bit errors per sequence
  (0.00 / 0.75 / 0.16 / 0.00 / 3.94 / 0.00). Seeds 3-5 were added on 2026-11-28 late night.
- Copy at length 120 (100 sequences): median 2.88 bit errors per sequence over 6 seeds (0.94 / 5.32 /
  4.82 / 0.00 / 36.05 / 0.00). Seeds 3 and 5 copy all 100 length-120 sequences without an error (seed
  3: cost 0.18 bits per sequence), so zero is reachable, but not by the median seed. Write heads that
  start by moving one row per step (row "sequential write init", same 6 seeds): median 0.26 at length
  120 (4.94 / 0.01 / 0.00 / 23.98 / 0.51 / 0.00; three seeds at or near zero) and 6 of 6 seeds
  converged, but median 0.39 at length 20 and 1.00 at 50 against 0.08 and 0.00: not adopted for copy,
  whose first target is lengths 1-20. The rest of this paragraph is about the first 3 seeds. The
  default no longer drops the learning rate: with the drop the median was 10.11 (10.11 / 9.70 / 14.26) and no length was better (row "lr drop" above), so `NO_LR_DROP` in
  ds2cli/ntm/run.py now holds copy (the other tasks keep the drop). Where the errors are (checkpoint
  of the median seed, seed 2, on the length-120 test set): all 4.82 bits per sequence come from ONE of
  the 100 sequences, output wholly wrong (482 bits, chance level); the other 99 are perfect. That model
  writes backwards from row 127 (shift -1 each step; 120 vectors fit in the 128 rows). In the failed
  sequence the write head stalls and turns back over its last ~15 vectors (rows 22, 22, 22, 23, 23,
  24), and after the delimiter the read head's content lookup of the first vector does not focus (max
  weight 0.01, i.e. uniform over 128 rows), so it never locks onto the sequence. Seed 1 (5.32) has the
  same kind of single global failure (max 502 bits, 83% perfect); seed 0 (0.94) has only local errors
  (at most 7 bits in a sequence, 64% perfect). Training without the drop is less stable: seed 2 was
  solved at ~10,000 sequences and had collapsed to 33 bit errors per sequence by 15,000 (recovering by
  20,000); keeping the best checkpoint by validation (lengths 1-20 plus 120) is what makes it work.
  Not tried for lack of time: curriculum on lengths, training beyond length 20.
- NTM against the LSTM baseline at copy lengths 30, 50, 120: median 0.01 / 0.00 / 2.88 bit errors per
  sequence against 83.9 / 164.1 / 449.2 for the LSTM (chance is 4 bits per vector: 120 / 200 / 480). The
  LSTM (3 x 256, the paper's size; lr 1e-3, batch 64, eps 1e-8, 150,000 sequences, 1 seed, 7.5 CPU
  minutes) only partly learned the training lengths (8.7 and 43.2 bit errors at lengths 10 and 20), as
  in the paper, where it was still above 2 bits after a million sequences; so the comparison shows the
  NTM learning and generalising where the LSTM does neither, not the LSTM failing only beyond length 20.
- Associative recall (feedforward NTM, 4 heads, 30,000 episodes, batch 4, lr 2e-4, as in the paper many
  small updates; write heads start by moving one row per step since 2026-11-28 late night): 3 of 3
  seeds converged (at 24,000 / 6,000 / 8,000 episodes; median 8,000). Median test bit errors per
  sequence: 0.00 at 6 items, 0.00 at 12, 0.21 at 15 (seed 0: 0.07 / 0.11 / 0.64; seed 1: 0.00 / 0.00 /
  0.21; seed 2: 0.00 / 0.00 / 0.00): near zero within 30,000 episodes, and generalising to 12 and 15
  items. 303-350 CPU s per seed. With the free initialisation (row "batch 4, ..., free write init") 2 of
  3 seeds converged (at 7,000 and 20,000) and seed 1 stayed at ~6 bit errors; medians 0.07 / 0.17 /
  0.55. The default before that (batch 16, lr 3e-4, free: row "batch 16") gave 0.38 / 1.33 / 2.04. Probes on
  its stuck seed: batch 8, lr 3e-4, no lr drop: 1.1 bit errors at 30,000 episodes; batch 16, lr 1e-3:
  diverged (NaN from ~11,000 episodes).
- Repeat copy: converged within 100,000 sequences in 3 of 3 seeds (at 64,000 / 54,000 / 46,000; median
  54,000; runs stopped at convergence). At the training maximum (10 x 10) median 0.47 bit errors per
  sequence; the just-converged models do not generalise: median 288 bit errors at 10 x 20 and 194 at
  20 x 10 (best seed 119 and 8.9). The paper's model generalised to both (with end-marker errors).
  With write heads that start by moving one row per step (row "sequential write init", same seeds,
  2026-11-28 late night): converged sooner (42,000 / 36,000 / 42,000, median 42,000) but generalised
  no better (median 359 and 357 bit errors at 10 x 20 and 20 x 10; 0.58 at 10 x 10): not adopted.
- Dynamic N-grams: met. Default since 2026-11-28 late night: batch 32, lr 1e-3 for 72,000 sequences
  then 1e-4 for the last 24,000 (`lr_schedule="step"`), memory 128 x 20, and write heads initialised to
  move one row per step (`write_init="sequential"`). 128.90 / 129.94 / 128.35 bits per sequence (seeds
  0 / 1 / 2), median 128.90 against the Bayes-optimal estimator's 127.35 on the same 1,000 test
  sequences: a gap of 1.55 bits (per seed 1.55 / 2.59 / 1.00), within the paper's ~2. With the free
  initialisation and a constant rate (row "free write init", the default until then): 133.3 / 154.7 /
  129.2, a median gap of 6.0.
  - How the trained models solve it (checkpoints of the old seed 2 and the new seed 0, on test
    sequences): the write head moves one row per step and writes each step's context and bit, sharply
    (max weight 0.999): a log of the sequence. The read head looks the current context up by content,
    spread over the rows where that context occurred before (max weight ~0.3), so the read vector
    averages the bits that followed it. With the free initialisation a model had to discover the
    one-row-per-step movement first, and sat on a plateau at ~159 bits until it did: the old seed 2 at
    28,000-32,000 sequences; the old seed 0 never did and learned a blurred version instead (write
    weights at most ~0.2), the old seed 1 collapsed. The sequential start (biases of the write
    head: gate -3, shift +1 logit 3, sharpening 2, i.e. about 0.95 of the previous weighting kept, 0.9
    of it moved one row, gamma 3.1) moved that jump to 12,000-16,000 / 24,000-32,000 / 12,000-20,000
    sequences (validation 139.4 at 16,000 for seed 0, against 161.8).
  - The 10x drop for the last quarter took validation from 131.1 to 129.6 (seed 0) and from 130.5 to
    129.2 (seed 1) within 4,000 sequences. Without it (row "sequential write init" without "lr x0.1",
    seeds 0 and 1 only; the first 72,000 sequences are the same run) the test cost is 129.79 and
    131.05, 0.9 and 1.1 bits worse: both changes are needed for the target.
  - The floor of this solution: a log in 128 rows holds only the last 128 steps. The optimal estimator
    that counts only the last 128 steps costs 1.0 bit more than the full one (129.61 against 128.63 on
    2,000 other sequences), so seed 2 (gap 1.00) is about at that floor; a gap well below 1 would need a
    model that keeps counts per context instead.
  - Time: 1,403 / 1,432 / 1,580 CPU s per seed (seeds 0 and 1 side by side, seed 2 with another job
    on the other core), within the 30 minutes, with less margin than the other tasks.
  Earlier attempts, all with the free initialisation and not adopted. The seeds learned very
  differently: seed 2 sat at 159 bits until 28,000 sequences, dropped suddenly to 136 by 32,000 and
  stayed at 129-130 on validation from 48,000 on (one spike to 143.6 at 44,000; best at 88,000); seed 0
  improved steadily (142 -> 134 over the last 48,000, still improving); seed 1 reached 155.7 at 44,000,
  collapsed to 196 (worse than always guessing 1/2) at 56,000 and recovered to 155 by the end.
  Tried on 2026-11-28 night to make the jump faster or safer (validation cost, 100 sequences, seed 0
  unless said):
  - Per-step cost: profiled one training step (batch 32, 199 time steps): most of it is small
    elementwise ops on the whole memory (dispatch-bound, ~10-20 us each); the shift and the write were
    rewritten with fewer ops (471 -> 431 ms per step; the shift's rewrite was later reverted, see
    Speed). With 32 memory rows (one per 5-bit
    context) a step takes ~260-290 ms, 1.5-1.8x less per sequence.
  - Short probes, 32 rows, 16,000 sequences (~170 CPU s each): constant lr 1e-3: 165.6 (128 rows at
    16,000: 161.8); cosine 1e-3 -> 0 over the probe: 168.2; warm-up 2,000 then cosine from 2e-3:
    165.5; Adam (eps 1e-8), warm-up then cosine from 2e-3: 175.4; RMSProp eps 1e-3: 166.1 (a spike to
    181 at 10,000); eps 1e-4: 193.6 at 2,000 (stopped); fixed random initial memory (N(0, 0.5^2), so
    content addressing can tell rows apart): 167.7 at 12,000, then spikes to 177.5; learned initial
    memory: 164.5 at 14,000, then a spike to 183.5. None clearly better than the plain setting, and
    loss spikes at lr 1e-3 in 3 of 7. In the library, off by default: NTMTrainConfig.lr_schedule /
    warmup_steps / lr_final, NTMTrainConfig.rollback_above, NTMConfig.memory_init (benchmark flags
    --lr-schedule, --lr-final, --rollback-above, --memory-rows); Adam was probed outside it.
  - Full runs, 32 rows, cosine 1e-3 -> 1e-4, 112,000 sequences, with roll-back (when validation is more
    than 12 bits above the best: restore the best weights and optimiser state, halve the rate; row
    "cosine to 0.1x, memory 32 x 20"): 168.9 / 149.1 / 139.3 (median 149.1; 886-931 CPU s, seeds 1 and 2
    run alone on the other core). Roll-backs: 3 / 2 / 0; after them the halved rates left seeds 0 and
    1 on plateaus (seed 0 at ~168 from 50,000 on). Before that, seed 0 without roll-back (128,000
    planned) collapsed from 164 to 212 at 28,000, and with roll-back at 6 bits it rolled back twice by
    18,000 (both stopped). 32 rows are ~1.7x faster but ended 36 and 10 bits worse than 128 rows on
    seeds 0 and 2 (seed 1: 5.6 better, where the 128-row run had collapsed): not adopted, and the
    defaults are back to the plain setting.
  - Roll-back at 12 bits with the default (128 rows, constant 1e-3) on seed 1, the one that collapsed:
    141.9 bits on the test set, against 154.7 without (row "roll-back at 12 bits", one seed, 1,243 CPU
    s). It rolled back once, at 36,000 (validation 182.0 against the best 158.2), and at the halved
    rate still improved to 143.6 on validation by 96,000. Promising, but one seed; seed 2's spike
    (131.0 -> 143.6 at 44,000) would have triggered it too and halved its rate, and seed 0 (never more
    than 12 bits above its best) would have stayed at 133.3, so the 3-seed median would not have reached
    the target either. Not made the default for lack of a 3-seed run.
  Checked by the earlier session: the estimator and the cost follow the paper; both are summed over
  the same 195 predictions (bits 5-199; the first 5 bits are uniform, and scoring them would add the
  same ~1 bit each to both), on the same 1,000 sequences; an independent per-sequence loop reproduces
  127.35 exactly, and adaptive (Krichevsky-Trofimov) estimators of order 0-4 cost 183.7 / 178.7 /
  171.2 / 161.0 / 145.7 bits. Its probes (seed 0, validation at ~16,000 sequences, 128 rows): batch 32
  lr 1e-3: 163.7; batch 32 lr 3e-3: 164.6; batch 64 lr 1e-3: 173.6. Sanity baseline: the LSTM (3 x
  128, lr 1e-3, batch 32, eps 1e-8) stayed at 195.0 bits (exactly 1 bit per prediction) for 30,400
  sequences (184 CPU s), while the NTM left that plateau within 1,600.
- Priority sort (lr 1e-3, 60,000 sequences; write heads start by moving one row per step since
  2026-11-28 late night): NTM cost 49.0 bits per sequence (median of 3 seeds: 49.0 / 57.1 / 40.6; bit
  errors 15.2 / 18.3 / 12.6) against 122.6 (121.9 / 122.6 / 123.5; 54.2 bit errors) for the LSTM
  baseline (3 x 128) with the same lr 1e-3, batch 16 and 60,000 sequences; chance is 128 bits. With
  the free start (row "free write init") the NTM reached 91.4 (91.8 / 78.1 / 91.4); all 5 write heads
  start together at row 0, and the gain came anyway. The NTM pulls away with training: at 20,000
  sequences (rows "20,000", free start) it was 117.9 against 127.0, and at lr 1e-4 125.1 against
  128.0. No sequence is sorted perfectly yet and two seeds were still improving at 60,000 (best
  checkpoints at 56,000 / 40,000 / 60,000; 562-604 CPU s per seed); the paper trained for millions.
- Speed: 3.3x pytorch-ntm at batch 1 in the recorded run (12.5 against 40.8 ms per sequence,
  2026-11-28 night, idle core); 3.2x and 3.4x in two earlier runs that day: at least 3x in every run,
  with a small margin. 4.8x and 5.7x at equal batch sizes 16 and 64, 26x and 40x against the peer's
  usual batch-1 training. A fused memory step (one autograd Function with a hand-written backward) and
  a fused LSTM step were built, matched autograd to 1e-16, and gave no measurable gain (the per-step
  cost is ATen op dispatch, not autograd bookkeeping), so they were dropped; torch.compile of the whole
  step gave 1.4x at batch 1 but took ~40 s to compile per batch size and recompiled on stride and
  requires-grad changes, so it was not adopted. Since 2026-11-28 night a single write head computes
  M + w (a - M e) (three ops on the whole memory instead of five). A circular shift that sums 2k+1
  shifted slices of the padded weighting instead of one gather was also tried: a little faster at
  batch 32 but 12% slower at batch 1 (13.9-14.5 against 12.3-13.0 ms per sequence, alternating runs),
  which took the batch-1 ratio to 2.9x, so the gather stays.
- Time: every task's default training run finishes within 30 minutes on this CPU (CPU seconds for
  training plus validation, one core, one thread, per seed): copy 93-99 s (20,000 sequences),
  associative recall 303-350 s (30,000, batch 4), priority sort 562-604 s (60,000; LSTM baseline 44-46 s), n-grams
  1,403-1,580 s (96,000 sequences; the other core busy too; 1,256 s for the free-initialised seed 2 alone
  on its core), repeat copy 390-554 s to
  convergence at 46,000-64,000 sequences, 8.6 ms per sequence, so about 14 minutes for the full default
  100,000.

""".splitlines()

REPRODUCE = """### How `ds2cli ntm` trains (and where it departs from the paper)

- Model as in §3: per-head content, interpolation, circular shift (-1, 0, +1) and sharpening; erase then
  add; memory 128 x 20 starting at the constant 1e-6; learned initial weightings (focused on row 0) and
  read vectors. All heads address the previous memory; reads feed the output and the next controller step.
  The paper's sizes per task (Tables 1-3) are the defaults for `--controller lstm|ff` and `--model lstm`.
- Cost is the paper's: cross-entropy in bits summed over a sequence's output bits; RMSProp with
  momentum 0.9, every gradient component clipped to [-10, 10], and Graves's denominator floor
  (eps 1e-2; torch's default 1e-8 made solved NTMs blow up on the next loss spike).
- Departures, for speed on a CPU: batches of 16 sequences at lr 3e-4 (copy, repeat copy; 1e-3 for sorting),
  4 at lr 2e-4 for recall and 32 at lr 1e-3 for n-grams, instead of one sequence at 1e-4 / 3e-5 (n-grams: the
  paper's 3e-5 is about 30x smaller; at our earlier 1e-4 and batch 16 the NTM was still 48 bits above
  the optimum after 20,000 sequences); the learning rate drops 10x once validation bit errors fall
  below 1 per sequence, except on copy (never triggers on n-grams, whose bit errors stay far above 1);
  the best checkpoint by validation is kept (copy: lengths 1-20 plus length 120, validation seeds other
  than the test's). `--batch-size 1 --lr 1e-4` gives the paper's exact setting.
- Write heads that start as a tape (`NTMConfig.write_init="sequential"`, CLI `--write-init`): biases
  that make an untrained write head keep its weighting, move it one row per step and keep it sharp.
  Trained models learn that movement on copy, recall and n-grams; starting with it is the default
  (`NTM_MODEL_DEFAULTS` in ds2cli/ntm/run.py) for associative recall (3 of 3 seeds converged, against
  2 of 3), n-grams (median gap to the optimum 1.55 bits, against 6.0) and priority sort (49.0 bits
  against 91.4). Copy and repeat copy keep the free start (see their targets). N-grams also drop the
  rate 10x for the last quarter of the run (`lr_schedule="step"`, `lr_final`, `decay_at`).
- Optional, off by default (NTMTrainConfig / NTMConfig; benchmark flags, not CLI options): a cosine
  learning-rate decay after a linear warm-up (`lr_schedule`, `warmup_steps`, `lr_final`); roll-back of
  collapses (`rollback_above`: a validation cost that many bits above the best restores the best
  weights and optimiser state and halves the rate); a random or learned initial memory
  (`memory_init`). Tried on n-grams with the free initialisation, none adopted (see the targets above).
- The LSTM baseline row for copy uses lr 1e-3, batch 64 and RMSProp eps 1e-8: with the NTM's eps 1e-2
  floor and lr 3e-4 it had not started to learn after 40,000 sequences.

### Reproduce

```sh
# speed, side by side with a local copy of loudinthecloud/pytorch-ntm (not part of this repository)
git clone https://github.com/loudinthecloud/pytorch-ntm /tmp/pytorch-ntm
taskset -c 1 python -m benchmarks.ntm_speed --peer /tmp/pytorch-ntm --rounds 5   # -> results/ntm_speed.json
# convergence, median over seeds (defaults: the CLI's training settings per task)
python -m benchmarks.ntm_convergence --task copy --seeds 3 --eval-every 500   # default: no lr drop
python -m benchmarks.ntm_convergence --task copy --seeds 3 --eval-every 500 --lr-drop \\
    --out benchmarks/results/ntm_convergence_copy_ntm_lstm_lr_drop.json
python -m benchmarks.ntm_convergence --task copy --model lstm --seeds 1 --sequences 150016 --batch-size 64 \\
    --eval-every 10048 --lr 1e-3 --eps 1e-8
python -m benchmarks.ntm_convergence --task associative-recall --controller ff --seeds 3
python -m benchmarks.ntm_convergence --task associative-recall --controller ff --seeds 3 --write-init free \
    --out benchmarks/results/ntm_convergence_associative_recall_ntm_ff_free_write.json
python -m benchmarks.ntm_convergence --task priority-sort --first-seed S --seeds 1 --eval-every 4000 --sequences 60000  # S=0,1,2; merged
# ... and with --write-init free: ..._priority_sort_ntm_lstm_free_write.json
python -m benchmarks.ntm_convergence --task priority-sort --model lstm --seeds 3 --lr 1e-3 --eval-every 4000 --sequences 60000
python -m benchmarks.ntm_convergence --task priority-sort --first-seed S --seeds 1 --eval-every 2000 --sequences 20000  # first lr 1e-3 default; *_20k.json
python -m benchmarks.ntm_convergence --task priority-sort --model lstm --seeds 3 --lr 1e-3 --eval-every 2000 --sequences 20000  # *_20k.json
# the rows at lr 1e-4 (files ..._lr1e-4.json): --lr 1e-4 --eval-every 1000 for both
# one seed per process, then merged (S = 0, 1, 2)
python -m benchmarks.ntm_convergence --task repeat-copy --first-seed S --seeds 1 --stop-when-converged \\
    --eval-every 2000 --out rc_sS.json
python -m benchmarks.ntm_convergence --task ngrams --first-seed S --seeds 1 --eval-every 4000 --out ng_sS.json
python -m benchmarks.ntm_convergence --task ngrams --first-seed S --seeds 1 --eval-every 4000 --write-init free \
    --lr-schedule constant --out ng_free_sS.json   # the default until 2026-11-28 late night
python -m benchmarks.ntm_convergence --task ngrams --first-seed S --seeds 1 --eval-every 2000 --sequences 112000 \
    --memory-rows 32 --lr-schedule cosine --lr-final 0.1 --rollback-above 12 --out ng32_sS.json   # not adopted
python -m benchmarks.ntm_convergence --task ngrams --first-seed 1 --seeds 1 --eval-every 4000 --rollback-above 12 \
    --out benchmarks/results/ntm_convergence_ngrams_ntm_lstm_rollback12_seed1.json   # one seed, not adopted
python -m benchmarks.ntm_convergence --merge rc_s0.json rc_s1.json rc_s2.json \\
    --out benchmarks/results/ntm_convergence_repeat_copy_ntm_lstm.json
# the same with --write-init sequential, merged into ..._repeat_copy_ntm_lstm_sequential_write.json
# copy seeds 3-5: --first-seed 3 --seeds 3 --eval-every 500, with --write-init free (merged into the default
# file) and with --write-init sequential (merged with seeds 0-2 into ..._copy_ntm_lstm_sequential_write.json)
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
