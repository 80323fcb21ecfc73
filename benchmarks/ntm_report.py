"""Write benchmarks/results/ntm.md from the ntm_*.json results, and from nothing else: every number
in the report is read from (or computed from) those files; the prose only explains.

    python -m benchmarks.ntm_report
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from benchmarks.paths import recorded_commit, recorded_date
from ds2cli.fileio import write_text
from ds2cli.ntm.run import DEFAULT_TRAINING, NO_LR_DROP, NTM_MODEL_DEFAULTS, NTM_TRAIN_DEFAULTS

RESULTS = Path(__file__).resolve().parent / "results"
TASK_ORDER = ["copy", "repeat-copy", "associative-recall", "ngrams", "priority-sort"]
# The project's targets (its specification, not measurements).
COPY_SEQUENCES = 20_000
REPEAT_COPY_SEQUENCES = 100_000
NEAR_ZERO_BIT_ERRORS = 0.5
NGRAM_GAP_BITS = 2.0
SPEEDUP_AT_BATCH_1 = 3.0
CPU_MINUTES_PER_TASK = 30


def load_results() -> list[tuple[Path, dict]]:
    found = [(p, json.loads(p.read_text())) for p in sorted(RESULTS.glob("ntm_convergence_*.json"))]
    found.sort(key=lambda pr: (TASK_ORDER.index(pr[1]["task"]), pr[1]["model"] != "ntm", pr[0].name))
    return found


def is_default(res: dict) -> bool:
    """Whether a result is the task's default training (what `ds2cli ntm TASK` runs)."""
    if res["model"] != "ntm":
        return False
    task, a = res["task"], res["args"]
    steps, batch, lr = DEFAULT_TRAINING[task]
    model = {"write_init": "free", **NTM_MODEL_DEFAULTS.get(task, {})}
    train = {"lr_schedule": "constant", **NTM_TRAIN_DEFAULTS.get(task, {})}
    return (a["sequences"] == steps * batch and a["batch_size"] == batch and math.isclose(a["lr"], lr)
            and (a.get("write_init") or "free") == model["write_init"]
            and (a.get("lr_schedule") or "constant") == train["lr_schedule"]
            and bool(a.get("no_lr_drop")) == (task in NO_LR_DROP)
            and a.get("memory_rows") in (None, 128) and not a.get("rollback_above"))


def default_of(results, task: str):
    return next((res for _, res in results if res["task"] == task and is_default(res)), None)


def baseline_of(results, task: str):
    """The LSTM baseline of a task: the one trained on the most sequences."""
    runs = [res for _, res in results if res["task"] == task and res["model"] == "lstm"]
    return max(runs, key=lambda r: r["args"]["sequences"]) if runs else None


def converged_median(res: dict) -> float:
    """Median sequences to convergence over seeds, a seed that did not converge counting as never."""
    return statistics.median(math.inf if c is None else c for c in res["summary"]["converged_at_sequences"])


def seeds_text(res: dict) -> str:
    s = res["summary"]
    return f"{s['converged_seeds']} of {s['seeds']} seeds converged"


def per_seed(values, digits: int = 2) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def label(res: dict) -> str:
    model = res["model"] + (f"-{res['controller']}" if res.get("controller") else "")
    a = res["args"]
    lr = a.get("lr") or res["per_seed"][0]["lr"]
    return (f"{res['task']}, {model}, batch {a['batch_size']}, lr {lr:g}, {a['sequences']:,} sequences"
            + (f", eps {a['eps']:g}" if a.get("eps") else "")
            + (", no lr drop" if a.get("no_lr_drop") else ", lr drop" if res["model"] == "ntm" else "")
            + (", stop when converged" if a.get("stop_when_converged") else "")
            + (f", cosine to {a.get('lr_final') or 0:g}x" if a.get("lr_schedule") == "cosine" else "")
            + (f", lr x{a['lr_final']:g} from {a['decay_at']:.0%} of the run" if a.get("lr_schedule") == "step" else "")
            # A result without the option ran the free initialisation.
            + (f", {a.get('write_init') or 'free'} write init" if res["model"] == "ntm" else "")
            + (f", roll-back at {a['rollback_above']:g} bits" if a.get("rollback_above") else "")
            + (f", memory {a['memory_rows']} x 20" if a.get("memory_rows") not in (None, 128) else ""))


def projected_cpu_seconds(res: dict) -> list[float]:
    """CPU seconds per seed for the full budget: runs that stopped at convergence are scaled up."""
    budget = res["args"]["sequences"]
    return [s["train_cpu_seconds"] * budget / s["sequences_trained"] for s in res["per_seed"]
            if s.get("train_cpu_seconds") is not None]


def targets_section(results) -> list[str]:
    rows = []
    copy, copy_lstm = default_of(results, "copy"), baseline_of(results, "copy")
    if copy:
        at = converged_median(copy)
        rows.append(("Copy: below the convergence threshold on lengths 1-20", f"<= {COPY_SEQUENCES:,} sequences",
                     f"median {at:,.0f} sequences ({seeds_text(copy)})", at <= COPY_SEQUENCES))
        t = copy["summary"]["test_median"].get("120")
        if t:
            zero = sum(v == 0 for v in t["bit_errors_per_seed"])
            rows.append(("Copy at length 120: bit errors per sequence", "0",
                         f"median {t['bit_errors']:.2f} (per seed {per_seed(t['bit_errors_per_seed'])}); "
                         f"{zero} of {len(t['bit_errors_per_seed'])} seeds at 0", t["bit_errors"] == 0))
    if copy and copy_lstm:
        lengths = [n for n in copy["summary"]["test_median"] if n in copy_lstm["summary"]["test_median"]
                   and int(n) > 20]
        ntm = [copy["summary"]["test_median"][n]["bit_errors"] for n in lengths]
        lstm = [copy_lstm["summary"]["test_median"][n]["bit_errors"] for n in lengths]
        rows.append((f"Copy beyond the training lengths ({' / '.join(lengths)}): NTM against the LSTM baseline",
                     "NTM generalises, LSTM not", f"{per_seed(ntm)} against {per_seed(lstm, 1)} bit errors",
                     all(a < b for a, b in zip(ntm, lstm))))
    rc = default_of(results, "repeat-copy")
    if rc:
        at = converged_median(rc)
        rows.append(("Repeat copy: converged", f"<= {REPEAT_COPY_SEQUENCES:,} sequences",
                     f"median {at:,.0f} sequences ({seeds_text(rc)})", at <= REPEAT_COPY_SEQUENCES))
    ar = default_of(results, "associative-recall")
    if ar:
        med = ar["summary"]["test_median"]
        rows.append((f"Associative recall: bit errors per sequence at {' / '.join(med)} items",
                     f"near zero (median < {NEAR_ZERO_BIT_ERRORS:g})",
                     f"{per_seed(t['bit_errors'] for t in med.values())} ({seeds_text(ar)})",
                     all(t["bit_errors"] < NEAR_ZERO_BIT_ERRORS for t in med.values())))
    ng = default_of(results, "ngrams")
    if ng:
        t = next(iter(ng["summary"]["test_median"].values()))
        gaps = [c - t["optimal_cost"] for c in t["cost_per_seed"]]
        rows.append(("Dynamic n-grams: cost above the Bayes-optimal estimator", f"<= {NGRAM_GAP_BITS:g} bits",
                     f"median {statistics.median(gaps):.2f} bits ({t['cost']:.2f} against {t['optimal_cost']:.2f}; "
                     f"per seed {per_seed(gaps)})", statistics.median(gaps) <= NGRAM_GAP_BITS))
    ps, ps_lstm = default_of(results, "priority-sort"), baseline_of(results, "priority-sort")
    if ps and ps_lstm:
        a, b = (next(iter(r["summary"]["test_median"].values())) for r in (ps, ps_lstm))
        rows.append(("Priority sort: cost in bits per sequence, NTM against the LSTM baseline", "reported",
                     f"{a['cost']:.1f} (per seed {per_seed(a['cost_per_seed'], 1)}) against {b['cost']:.1f}",
                     None))
    speed = _load("ntm_speed.json")
    if speed:
        one = next(r for r in speed["results"] if r["batch_size"] == 1)
        if "speedup" in one:
            rows.append(("Training speed against pytorch-ntm at batch 1", f">= {SPEEDUP_AT_BATCH_1:g}x",
                         f"{one['speedup']:.1f}x ({one['ours_ms_per_sequence']:.1f} against "
                         f"{one['peer_ms_per_sequence']:.1f} ms per sequence)", one["speedup"] >= SPEEDUP_AT_BATCH_1))
    defaults = [d for d in (default_of(results, t) for t in TASK_ORDER) if d]
    if defaults:
        worst = {d["task"]: max(projected_cpu_seconds(d)) / 60 for d in defaults if projected_cpu_seconds(d)}
        rows.append(("Default training time per task and seed, CPU minutes on one core", f"<= {CPU_MINUTES_PER_TASK}",
                     ", ".join(f"{task} {m:.1f}" for task, m in worst.items()),
                     all(m <= CPU_MINUTES_PER_TASK for m in worst.values())))
    lines = ["## Against the targets", "",
             "Each task's default training (what `ds2cli ntm TASK` runs), median over seeds.", "",
             "| what | target | measured | met |", "| --- | --- | --- | --- |"]
    lines += [f"| {what} | {target} | {measured} | {'-' if met is None else 'yes' if met else 'no'} |"
              for what, target, measured, met in rows]
    return lines + [""]


def _load(name: str):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def speed_section() -> list[str]:
    res = _load("ntm_speed.json")
    if not res:
        return ["Speed: not measured (`python -m benchmarks.ntm_speed --peer PEER`).", ""]
    lines = ["## Training speed against pytorch-ntm (copy task, the same configuration, one run)", "",
             f"Torch threads: {res['torch_threads']} for both; {res['results'][0]['rounds']} alternating rounds, "
             f"median. Measured {res.get('date', '(date not recorded)')} on {res.get('cpu', '?')} with "
             f"{res.get('cpu_count', '?')} cores, torch {res.get('torch', '?')}; load average at the end "
             f"{', '.join(f'{v:.1f}' for v in res['load_average_at_end'])}. Peer step: {res.get('peer_train_step', '')}.",
             "", "| batch | ds2cli ms/seq | pytorch-ntm ms/seq | speed-up (same batch) | ds2cli vs pytorch-ntm at batch 1 |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for r in res["results"]:
        lines.append(f"| {r['batch_size']} | {r['ours_ms_per_sequence']:.2f} | {r.get('peer_ms_per_sequence', float('nan')):.2f} "
                     f"| {r.get('speedup', float('nan')):.1f}x | {r.get('speedup_vs_peer_batch1', float('nan')):.1f}x |")
    lines += ["", f"_{res['caveat']}_", ""]
    return lines


def convergence_rows(results) -> list[str]:
    lines = ["| task | model | training | seeds | sequences | train CPU s (median) | converged at (median) "
             "| test length | cost bits/seq (median) | bit errors/seq (median) | per seed bit errors "
             "| sequences without error (median) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for _, res in results:
        s = res["summary"]
        model = res["model"] + (f"-{res['controller']}" if res.get("controller") else "")
        at = converged_median(res)
        seeds = f"{s['converged_seeds']}/{s['seeds']} seeds"
        conv_text = (seeds if at == math.inf else f"{at:,.0f}" if s["converged_seeds"] == s["seeds"]
                     else f"{at:,.0f} ({seeds})")
        a = res["args"]
        training = ", ".join(p for p in label(res).split(", ")[2:] if not p.endswith(" sequences"))
        cpu = [r.get("train_cpu_seconds") for r in res["per_seed"]]
        # A run that recorded only wall time shows none (its wall time includes other jobs' load).
        secs = f"{statistics.median(cpu):.0f}" if None not in cpu else "n/a"
        first = True
        for length, t in s["test_median"].items():
            opt = ""
            if t.get("optimal_cost") is not None:  # n-grams: the cost is the score, so give it per seed
                opt = (f" (optimal {t['optimal_cost']:.2f}; per seed "
                       + ", ".join(f"{v:.2f}" for v in t["cost_per_seed"]) + ")")
            per = ", ".join(f"{v:.2f}" for v in t["bit_errors_per_seed"])
            head = (f"| {res['task']} | {model} | {training} | {s['seeds']} | {a['sequences']:,} | {secs} "
                    f"| {conv_text} " if first else "| | | | | | | ")
            perfect = statistics.median(x["perfect"] for r in res["per_seed"] for x in r["test"] if x["length"] == length)
            lines.append(f"{head}| {length} | {t['cost']:.2f}{opt} | {t['bit_errors']:.2f} | {per} | {perfect:.0%} |")
            first = False
    return lines


def provenance(results) -> list[str]:
    lines = ["## Where each row comes from", "",
             "Command, date, machine and commit of every result file (merged files list one command per run).", "",
             "| file | configuration | date | machine | commit | command |", "| --- | --- | --- | --- | --- | --- |"]
    speed = RESULTS / "ntm_speed.json"
    entries = list(results) + ([(speed, json.loads(speed.read_text()))] if speed.is_file() else [])
    for path, res in entries:
        cmds = res.get("merged_from") or [res.get("command") or "python -m benchmarks.ntm_speed --peer PEER"]
        machine = (f"{res.get('cpu', 'x86_64')}, {res.get('cpu_count', '?')} cores, {res.get('torch_threads', '?')} "
                   f"thread, torch {res.get('torch', '?')}")
        what = label(res) if "task" in res else "speed, copy task"
        lines.append(f"| `{path.name}` | {what} | {recorded_date(path, res)} | {machine} | "
                     f"{recorded_commit(path, res)} | " + "<br>".join(f"`{c}`" for c in cmds) + " |")
    return lines + [""]


HEADER = """# Neural Turing Machines: results

Generated by `python -m benchmarks.ntm_report` from `benchmarks/results/ntm_*.json`; rerun it after
a benchmark instead of editing this file. How the model and its training work: `docs/ntm.md`.

Bit errors and cost are per sequence, on fixed test sequences (the seeds of the test sets differ
from those of the validation sets), for the best checkpoint by validation. "Converged at": the
first validation below the run's bit-error threshold on the training distribution; the median
counts a seed that never converged as never. Train CPU s: the process's CPU time for training
and validation, one torch thread pinned to one core.
""".splitlines()


def main(out: Path = RESULTS / "ntm.md") -> None:
    results = load_results()
    lines = HEADER + [""] + targets_section(results) + speed_section()
    lines += ["## Convergence and generalisation", ""] + convergence_rows(results) + [""]
    lines += provenance(results)
    write_text(out, "\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
