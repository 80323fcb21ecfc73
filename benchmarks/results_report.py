"""Write RESULTS.md from benchmarks/results/*.json, and from nothing else: one section per area,
each table under the command, date, machine and commit of the result it comes from. The prose
only explains; every number is read from (or computed from) the JSON.

    python -m benchmarks.results_report            # after a benchmark has rewritten its JSON
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmarks.paths import REPO, recorded_commit, recorded_date
from ds2cli.fileio import write_text

RESULTS = REPO / "benchmarks" / "results"
OUT = REPO / "RESULTS.md"
GPU_COMMAND = ("python -m benchmarks.gpu_check device --out DIR --peer-dir PEER --checkpoint exp/arctic/checkpoints/best.pt "
               "--manifest exp/arctic/manifests/test.jsonl, then python -m benchmarks.gpu_check finish DIR "
               "--checkpoint exp/arctic/checkpoints/best.pt --lm exp/arctic/lm/lm.bin")


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def machine(res: dict) -> str:
    """The machine a result names, in the words its JSON uses."""
    if res.get("device"):
        return f"{res['device']}, torch {res.get('torch', '?')}"
    m = res.get("machine")
    if isinstance(m, dict):
        text = m.get("processor") or m.get("platform", "").split("-with")[0] or "?"
        return f"{text}, {m.get('threads', '?')} thread(s), Python {m.get('python', '?')}"
    cpu = res.get("cpu") or m
    cores = res.get("cpu_count") or res.get("cores") or res.get("cpus") or res.get("cpu_cores")
    threads = res.get("threads") or res.get("torch_threads")
    parts = [str(p) for p in (cpu, cores and f"{cores} cores", threads and f"{threads} thread(s)",
                              res.get("torch") and f"torch {res['torch']}") if p]
    return ", ".join(parts) if parts else "not recorded"


def source(name: str, res: dict, command: str, same_machine_as: str | None = None) -> list[str]:
    """The provenance lines above a table; `same_machine_as` names a result of the same commit
    that records the machine when this one does not."""
    path = RESULTS / name
    where = machine(res)
    other = load(same_machine_as) if same_machine_as else None
    if where == "not recorded" and other and recorded_commit(path, res) == recorded_commit(RESULTS / same_machine_as, other):
        where = f"{machine(other)} (recorded by {same_machine_as}, same commit)"
    return [f"Source: [`benchmarks/results/{name}`](benchmarks/results/{name}); command `{res.get('command') or command}`; "
            f"date {recorded_date(path, res)}; machine {where}; commit {recorded_commit(path, res)}.", ""]


def demoted(markdown: str, drop_title: bool = True) -> list[str]:
    """A generated report's lines with its headings pushed below this file's sections."""
    lines = markdown.splitlines()
    if drop_title and lines and lines[0].startswith("#"):
        lines = lines[1:]
    return ["###" + ln.lstrip("#") if ln.startswith("#") else ln for ln in lines]


def demo_section() -> list[str]:
    r = load("demo.json")
    if not r:
        return []
    t = r["targets"]
    lines = ["## Demo", "", f"What was timed: {r['benchmark']}.", ""]
    lines += source("demo.json", r, "python -m benchmarks.demo_time")
    lines += ["| measure | result | target |", "| --- | --- | --- |",
              f"| wall time, end to end | {r['wall_seconds']} s | <= {t['wall_seconds']} s |",
              f"| training | {r['train_seconds']:.0f} s, {r['train_audio_s_per_s']} audio s/s, "
              f"{r['train_utterances']:,} utterances, {r['epochs']} epochs | |",
              f"| test WER / CER, greedy ({r['test_utterances']} utterances) | {pct(r['greedy']['wer'])} / "
              f"{pct(r['greedy']['cer'])} | |",
              f"| test WER / CER, KenLM beam search | {pct(r['kenlm_beam']['wer'])} / {pct(r['kenlm_beam']['cer'])} "
              f"| WER <= {pct(t['kenlm_beam_wer'], 0)} |",
              f"| dev CER by epoch | {', '.join(pct(c, 1) for c in r['dev_cer_by_epoch'])} | |"]
    if r.get("note"):
        lines += ["", f"Conditions: {r['note']}."]
    return lines + ["", "The demo trains the streaming recipe (tiny-stream); its scores beside the bidirectional "
                    "tiny recipe's on the same test split: [Streaming](#streaming).", ""]


def training_section() -> list[str]:
    lines = ["## Training", ""]
    s = load("train_speed.json")
    if s:
        lines += ["### Training step on the CPU, against deepspeech.pytorch", "",
                  "Identical synthetic batches; forward, backward and an AdamW step in fp32; the peer's own "
                  "`DeepSpeech` class from its checkout, timed alternately with ds2cli in one run.", ""]
        lines += source("train_speed.json", s, "python -m benchmarks.train_speed --peer-dir PEER --threads 2")
        lines += ["| model, batch | deepspeech.pytorch audio s/s | ds2cli audio s/s | speed-up |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {p['case']} | {p['peer']['audio_s_per_s']} | {p['ours']['audio_s_per_s']} | {p['speedup']}x |"
                  for p in s["peer"]]
        lines += ["", f"Recipe models on the same CPU (dense fp32 matmul rate {s['matmul_gflops']:.0f} GFLOP/s):", "",
                  "| model, batch | s/step | audio s/s | GFLOP/step | share of the matmul rate |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['name']} | {r['seconds_per_step']} | {r['audio_s_per_s']} | {r['gflop_per_step']} | "
                  f"{pct(r['matmul_share'], 0)} |" for r in s["recipes"]]
        lines += [""]
    c = load("train_convergence.json")
    if c:
        lines += ["### Recipes trained to completion", "", f"Conditions: {c['conditions']}", ""]
        lines += source("train_convergence.json", {**c.get("digits", {}), "recorded_in_commit": c.get("recorded_in_commit")},
                        "python -m benchmarks.train_convergence --recipes digits arctic")
        lines += ["| recipe | epochs | training hours of audio | train wall s | best dev WER | test WER (greedy) "
                  "| test CER | test utterances | target |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for name, r in c.items():
            if not isinstance(r, dict) or "test_wer" not in r:
                continue
            target = f"WER <= {pct(r['target_wer'], 0)}" if r.get("target_wer") else "-"
            lines.append(f"| `{name}` | {r['epochs']} | {r['train_hours']:.2f} | {r['train_seconds']:.0f} | "
                         f"{pct(r['best_dev_wer'])} | {pct(r['test_wer'])} | {pct(r['test_cer'])} | "
                         f"{r['test_utterances']} | {target} |")
        notes = [f"`{name}`: {r['note']}" for name, r in c.items() if isinstance(r, dict) and r.get("note")]
        lines += [""] + [f"- {n}" for n in notes] + [""]
    g = load("gpu.json")
    if g:
        lines += ["### On a GPU", ""]
        lines += source("gpu.json", g, GPU_COMMAND)
        lines += [f"Conditions: {g['note']}", "", "| model | precision | batch | step | audio s/s | peak memory |",
                  "| --- | --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {r['model']} | {r['precision']} | {r['batch']} x {r['seconds']:g} s | {r['step_s']:.3f} s | "
                  f"{r['audio_s_per_s']:,.0f} | {r['peak_gib']:.2f} GiB |" for r in g["training"]["recipes"]]
        lines += ["", "| against deepspeech.pytorch | peer step | ds2cli step | speed-up | peer / ds2cli peak memory |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {p['case']} | {p['peer_step_s']:.3f} s | {p['ours_step_s']:.3f} s | {p['speedup']}x | "
                  f"{p['peer_peak_gib']} / {p['ours_peak_gib']} GiB |" for p in g["training"]["peer"]]
        lines += [""]
    return lines


def decoding_section() -> list[str]:
    lines = ["## Decoding", ""]
    from benchmarks.decode_compare import md_text, model_files

    for f in model_files(RESULTS):
        d = load(f.name)
        lines += source(f.name, {**d, "command": None}, "python -m benchmarks.decode_compare " + d.get("command", ""))
    split = load("decode_split.json")
    if split:
        lines += source("decode_split.json", {**split, "command": None},
                        "python -m benchmarks.decode_split " + split.get("command", ""))
    lines += demoted(md_text(RESULTS)) + [""]
    b = load("decode_bf16_tiny.json")
    if b:
        q = b["precision"]
        lines += ["### bf16 inference on the CPU, tiny recipe", ""]
        lines += source("decode_bf16_tiny.json", b, "python -m benchmarks.decode_compare")
        lines += [f"Test split ({b['setup']['utterances']} utterances): LM WER {pct(q['bf16']['lm_wer'])} against "
                  f"{pct(q['fp32']['lm_wer'])} at fp32 (difference {100 * q['lm_wer_difference']:+.2f} points); "
                  f"greedy {pct(q['bf16']['greedy_wer'])} against {pct(q['fp32']['greedy_wer'])}.", ""]
    g = load("gpu.json")
    if g:
        inf = g["inference"]
        lines += ["### Inference on a GPU", ""]
        lines += source("gpu.json", g, GPU_COMMAND)
        lines += [f"The arctic recipe's model on its {inf['utterances']} test utterances.", "",
                  "| precision | network real-time factor | greedy WER | LM WER |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {p} | {inf[p]['network_rtf']:.4f} | {pct(inf[p]['greedy_wer'])} | {pct(inf[p]['lm_wer'])} |"
                  for p in ("fp32", "bf16", "fp16") if p in inf]
        if "long_audio" in inf:
            la = inf["long_audio"]
            lines += ["", f"Long audio: the test split joined into one {la['seconds']:.0f} s recording decodes in "
                      f"{la['wall_s']:.2f} s at {la['precision']}, peak GPU memory {la['peak_gib']:.2f} GiB."]
        lines += [""]
    return lines


def streaming_section() -> list[str]:
    lines = ["## Streaming", ""]
    a = load("stream_accuracy.json")
    if a:
        from benchmarks.stream_accuracy import table

        s = a["streaming"]
        lines += ["### Accuracy", ""]
        lines += source("stream_accuracy.json", a, "python -m benchmarks.stream_accuracy --stream "
                        "exp/tiny-stream/checkpoints/best.pt --bidirectional exp/tiny/checkpoints/best.pt "
                        "--manifest exp/tiny/manifests/test.jsonl")
        lines += [f"{a['manifest']}, {a['utterances']} utterances, {a['audio_seconds']:.0f} s of audio.", "",
                  table(s, a.get("bidirectional"), False), "",
                  f"Streaming in {a['chunk_ms']} ms chunks against `ds2cli decode` on the same model: greedy finals "
                  f"equal decode's for {s['greedy']['stream_equals_decode']} utterances, KenLM beam search for "
                  f"{s['kenlm_beam']['stream_equals_decode']}. bf16 streaming greedy WER "
                  f"{pct(s['greedy_bf16_stream']['wer'])}. Algorithmic latency {s['latency_ms']:.0f} ms.", ""]
    sp = load("stream_speed.json")
    if sp:
        from benchmarks.stream_speed import speed_md

        lines += source("stream_speed.json", sp, "python -m benchmarks.stream_speed --checkpoint "
                        "exp/tiny-stream/checkpoints/best.pt --manifest exp/tiny-stream/manifests/test.jsonl")
        lines += demoted("\n".join(speed_md(sp)), drop_title=False) + [""]
    return lines


def serving_section() -> list[str]:
    r = load("serve_load.json")
    if not r:
        return []
    from benchmarks.serve_load import write_md

    with tempfile.TemporaryDirectory() as tmp:
        write_md(r, Path(tmp) / "serve.md")
        text = (Path(tmp) / "serve.md").read_text()
    command = ("python -m benchmarks.serve_load --checkpoint exp/tiny-stream/checkpoints/best.pt --manifest "
               f"exp/tiny-stream/manifests/test.jsonl --streams {','.join(map(str, r['streams_tried']))} "
               f"--round-seconds {r['round_seconds']:g}")
    lines = ["## Serving", ""] + source("serve_load.json", r, command)
    lines += demoted(text) + [""]
    beam = load("serve_load_beam.json")
    if beam:
        with tempfile.TemporaryDirectory() as tmp:
            write_md(beam, Path(tmp) / "serve_beam.md")
            text = (Path(tmp) / "serve_beam.md").read_text()
        lines += ["### With the word LM (beam search)", ""]
        lines += source("serve_load_beam.json", beam, beam.get("command", "python -m benchmarks.serve_load --method beam"))
        lines += demoted(text) + [""]
    threads = load("serve_search_threads.json")
    if threads:
        lines += ["### Search threads", "",
                  f"The per-stream searches run on a thread pool beside the network step (compiled code that "
                  f"releases the GIL). Batch Dispatch, {threads['method']} search with the word LM (beam "
                  f"{threads['beam_size']}), one network thread, {threads['round_seconds']:g} s rounds.", ""]
        lines += source("serve_search_threads.json", threads, threads["command"])
        lines += ["| search threads | streams | final median / p98 ms | partial median / p98 ms | server CPU (cores) | errors |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in threads["rounds"]:
            f, p = r["final_latency_ms"], r["partial_latency_ms"]
            lines.append(f"| {r['search_threads']} | {r['streams']} | {f['median']} / {f['p98']} | {p['median']} / "
                         f"{p['p98']} | {r['server_cpu_cores']} | {r['errors']} |")
        lines.append("")
    soak = load("serve_soak.json")
    if soak:
        lines += soak_lines(soak)
    return lines


def soak_lines(r: dict) -> list[str]:
    f, p, m = r["final_latency_ms"], r["partial_latency_ms"], r["rss_mb"]
    lines = ["### Soak", "",
             f"{r['streams']} concurrent real-time streams for {r['seconds'] / 60:g} minutes against one server "
             f"(Batch Dispatch, {r['method']} search, {r['chunk_ms']} ms chunks), on `{r['checkpoint']}`.", ""]
    lines += source("serve_soak.json", r, r.get("command", "python -m benchmarks.serve_soak"))
    lines += ["| measure | result |", "| --- | --- |",
              f"| utterances recognised | {r['utterances']:,} |",
              f"| errors | {r['errors']} |",
              f"| final latency median / p98 / max | {f['median']} / {f['p98']} / {f['max']} ms |",
              f"| partial latency median / p98 | {p['median']} / {p['p98']} ms |",
              f"| finals equal to offline decoding | {r['finals_equal_offline']} |",
              f"| server memory (RSS) after the first window / middle / end | {m['after_first_window']} / "
              f"{m['middle']} / {m['end']} MB (growth {pct(m['growth'], 1)}, second half {pct(m['growth_second_half'], 1)}) |",
              f"| open file descriptors after the first window / end | {r['fds']['after_first_window']} / {r['fds']['end']} |",
              f"| streams open after the run (/health) | {r['active_streams_after']} |",
              f"| met (no error, RSS growth <= {pct(r['targets']['rss_growth_at_most'], 0)}, finals = offline) | "
              f"{'yes' if r['met'] else 'no'} |", ""]
    return lines


def alignment_section() -> list[str]:
    lines = ["## Alignment", ""]
    c = load("align_cleaning.json")
    if c:
        lines += ["### Data cleaning", "",
                  f"A share of {pct(c['fraction_corrupted'], 0)} of a held-out split's transcripts corrupted "
                  f"({c['corruptions']}), three independent corruptions pooled; `--filter` must leave few wrong "
                  "transcripts while keeping the correct ones.", ""]
        lines += source("align_cleaning.json", c, "python -m benchmarks.align_cleaning", "align_throughput.json")
        lines += ["| corpus | model's greedy CER | filter | fitted on | wrong left | correct kept | precision | recall |",
                  "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |"]
        for corpus in ("digits", "arctic"):
            r = c.get(corpus)
            if not r:
                continue
            cer = pct(r["measure"]["model_greedy_cer_clean"], 1)
            rows = [(r["logistic"], f"{r['fit']['split']} split"), (r["thresholds"], "-")]
            if "fit_on_train" in r:
                rows.append((r["fit_on_train"]["logistic"], "train split (the model's own training data)"))
            for f, fitted in rows:
                lines.append(f"| {corpus} | {cer} | {f['filter']} | {fitted} | {pct(f['wrong_share_kept'], 1)} | "
                             f"{pct(f['correct_kept_share'], 1)} | {pct(f['precision'], 1)} | {pct(f['recall'], 1)} |")
        lines += [""]
    t = load("align_timing.json")
    if t:
        lines += ["### Word timing", "",
                  "Spliced FSDD digit strings whose true word times are known from the splice.", ""]
        lines += source("align_timing.json", t, "python -m benchmarks.align_timing", "align_throughput.json")
        lines += ["| word edges | median error | p90 error | within 20 ms | boundaries |", "| --- | ---: | ---: | ---: | ---: |"]
        names = {"pauses": "`--boundaries pauses` (default)", "spikes": "`--boundaries spikes`",
                 "raw_spikes": "raw CTC spike times"}
        for key, name in names.items():
            m = t["test"][key]
            lines.append(f"| {name} | {m['median_abs_error_ms']} ms | {m['p90_abs_error_ms']} ms | "
                         f"{pct(m['within_20ms'], 1)} | {m['boundaries']} |")
        lines += [""]
    th = load("align_throughput.json")
    if th:
        lines += ["### Throughput", ""]
        lines += source("align_throughput.json", th, "python -m benchmarks.align_throughput")
        lines += [f"Conditions: {th['note']}; load average {th['load_average_at_start'][0]:.1f} at the start.", "",
                  "| corpus | parameters | audio | aligned audio s per s | cost against a greedy decode |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for corpus in ("digits", "arctic"):
            r = th.get(corpus)
            if r:
                lines.append(f"| {corpus} | {r['parameters']:,} | {r['audio_seconds']:.0f} s | "
                             f"{r['align_audio_s_per_s']:.0f} | {r['align_cost_vs_greedy']:.2f}x |")
        lines += [""]
    models = {(r["model"]["source"], r["model"]["corpus"]) for r in
              [x.get(k) for x in (c or {}, th or {}) for k in ("digits", "arctic")] + [t or {}] if r and "model" in r}
    if models:
        lines += ["Models: " + "; ".join(f"{corpus}: {src}" for src, corpus in sorted(models)) + ".", ""]
    return lines


def augmentation_section() -> list[str]:
    a = load("augment_speed.json")
    if not a:
        return []
    lines = ["## Augmentation", "", f"{a['what']}; {a['audio']}.", ""]
    lines += source("augment_speed.json", a, "python -m benchmarks.augment_speed")
    lines += ["| step | x real time |", "| --- | ---: |"]
    lines += [f"| ds2cli {name} | {v['x_realtime']:,.0f} |" for name, v in a["ours"].items()]
    lines += [f"| {name} | {v['x_realtime']:,.0f} |" for name, v in a["peers"].items()]
    tg = a["target"]
    lines += ["", f"Target: noise from recordings at >= {tg['noise_recordings_min_x_realtime']:,.0f}x real time "
              f"per core: {'met' if tg['met'] else 'not met'}.", ""]
    p = load("prepare_speed.json")
    if p:
        lines += ["## Data preparation", "", f"`ds2cli prepare librispeech` on a generated layout ({p['layout']}).", ""]
        lines += source("prepare_speed.json", p, "python -m benchmarks.prepare_speed --files 20000 --jobs 1 2")
        lines += [f"Conditions: {p['note']}.", "", "| jobs | files | seconds | files/s | skipped |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['jobs']} | {r['files']:,} | {r['seconds']} | {r['files_per_second']:,.0f} | {r['skipped']} |"
                  for r in p["results"]]
        lines += [""]
    return lines


SEARCH_NAMES = {"greedy": "greedy", "lm": "LM, recipe alpha/beta", "lm_tuned": "LM, alpha/beta tuned on dev"}


def realspeech_section() -> list[str]:
    lines = ["## Real speech", "",
             "Models of the `speechocean` recipe (trained from scratch, fine-tuned from the tiny model, pooled "
             "with the synthetic corpus, checkpoint-averaged) and pocketsphinx on speechocean762's test speakers.", ""]
    r = load("realspeech.json")
    if not r:
        return lines + ["No result file: `python -m benchmarks.realspeech --data-dir DIR` writes "
                        "`benchmarks/results/realspeech.json`, and this section then shows it.", ""]
    lines += source("realspeech.json", r, "python -m benchmarks.realspeech")
    lines += ["| configuration | search | test WER | test CER | utterances |", "| --- | --- | ---: | ---: | ---: |"]
    for name, v in r.items():
        if not isinstance(v, dict):
            continue
        names = {"lm": "its packaged LM"} if name == "pocketsphinx" else SEARCH_NAMES
        scores = [(names[k], v[k]) for k in names if isinstance(v.get(k), dict)] or [("its own", v)]
        lines += [f"| {name} | {search} | {pct(s['wer'])} | {pct(s['cer'])} | {s['utterances']} |"
                  for search, s in scores if "wer" in s]
    notes = []
    for name, v in r.items():
        if isinstance(v, dict) and v.get("train_command"):
            notes += [f"- {name}: {v['epochs']} epochs on {v['train_utterances']:,} utterances, "
                      f"{v['training_seconds'] / 60:.1f} min of training ({v['train_seconds'] / 60:.1f} min with "
                      f"data preparation), best dev WER {pct(v['best_dev_wer'])}: `{v['train_command']}`"]
        elif isinstance(v, dict) and v.get("average_command"):
            notes += [f"- {name}: the last epochs of {v['of']} averaged: `{v['average_command']}`"]
        if isinstance(v, dict) and isinstance(v.get("lm_tuned"), dict):
            t = v["lm_tuned"]
            notes += [f"  - {name} alpha {t['alpha']:g}, beta {t['beta']:g} tuned on the dev speakers "
                      f"(dev WER {pct(t['dev_wer'])}): `{t['tune_command']}`"]
        if name == "pocketsphinx" and isinstance(v, dict):
            same = "".join(f"; on the same {s['lm']['utterances']:,} utterances {c} scores {pct(s['greedy']['wer'])} "
                           f"greedy, {pct(s['lm']['wer'])} with the LM"
                           for c, s in v.get("models_on_these_utterances", {}).items())
            notes += [f"- {name}: its packaged US English model and LM, default settings, "
                      f"{v['seconds'] / 60:.1f} min in {v.get('jobs', 1)} process(es){same}: `{v['command']}`"]
    return lines + ([""] + notes if notes else []) + [""]


def ntm_section() -> list[str]:
    from benchmarks.ntm_report import load_results, targets_section

    results = load_results()
    if not results:
        return []
    dates = sorted(res["date"] for _, res in results if res.get("date"))
    lines = ["## Neural Turing Machines", "",
             f"Summary of [benchmarks/results/ntm.md](benchmarks/results/ntm.md), which lists every run with its "
             f"command, date, machine and commit (runs from {dates[0]} to {dates[-1]}, each on one core of "
             f"{machine(results[0][1])}). The model and its training: [docs/ntm.md](docs/ntm.md).", ""]
    return lines + demoted("\n".join(targets_section(results))) + [""]


HEADER = """# Results

Generated by `python -m benchmarks.results_report` from `benchmarks/results/*.json` (the results
are the JSON files; this file and the reports beside them are views of them). Each table names
the file it comes from, the command that wrote it, its date (the one the result gives, else the
day it was recorded: "(recorded)"), the machine and the commit it was recorded in. `make bench`
reruns the benchmarks.
""".splitlines()


def main(out: Path = OUT) -> None:
    sections = [demo_section, training_section, decoding_section, streaming_section, serving_section,
                alignment_section, augmentation_section, realspeech_section, ntm_section]
    lines = HEADER + [""]
    for make in sections:
        lines += make()
    write_text(out, "\n".join(lines).rstrip("\n") + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
