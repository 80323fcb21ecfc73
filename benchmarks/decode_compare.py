"""Decoding side by side: ds2cli's prefix beam search against pyctcdecode and torchaudio's
flashlight `ctc_decoder`, on the same emissions, the same KenLM model, the same beam width and
alpha/beta; DS2 character pruning against none; bf16 against fp32 inference; greedy against LM
WER on the recipes' test splits.

    python -m benchmarks.decode_compare --exp-dir exp/arctic            # its best.pt, test split, LM
    python -m benchmarks.decode_compare --checkpoint C --manifest M --lm L --beams 100 500
    python -m benchmarks.decode_compare --exp-dir exp/arctic --recipes exp/tiny exp/arctic

Writes --out (benchmarks/results/decode.json, or decode_NAME.json per model) and decode.md (for
decode_NAME.json files: a section per model, write_md). Every decoder runs --rounds alternating
rounds; the fastest counts. Runs on one thread:
the numbers are single-core decode speed (real-time factor = decode seconds / audio seconds)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
WORDS_ONLY = -1000.0  # unknown-word offset that leaves only LM words (natural log)


def _wer(refs, hyps, language="en") -> float:
    from ds2cli.metrics import score_pairs

    return score_pairs([(str(i), r, h) for i, (r, h) in enumerate(zip(refs, hyps))], language).wer.rate


def _norm(text: str) -> str:
    return " ".join(text.split())


def load_set(decoder, manifest, limit: int | None, precision_decoder=None):
    """(ids, refs, emissions (T, V) float32 arrays, audio seconds) for a manifest."""
    from ds2cli.manifest import read_manifest
    from ds2cli.text import normalize

    rows = read_manifest(manifest)[:limit] if limit else read_manifest(manifest)
    rec = (precision_decoder or decoder).recognizer
    waves, rows, bad = decoder.read_rows(rows)
    if bad:
        raise SystemExit(f"unreadable rows in {manifest}: {bad[:3]}")
    ems = [e.numpy() for e in rec.emissions(waves, batch_size=8)]
    refs = [normalize(r["text"], rec.tokenizer.language) for r in rows]
    return [r["id"] for r in rows], refs, ems, sum(len(w) for w in waves) / rec.feature_config.sample_rate


# -- the three decoders -----------------------------------------------------------------------
def run_ours(ems, tokenizer, scorer_factory, opts, fresh_caches=False, compiled=True):
    """ds2cli's beam search; compiled=False runs the numpy loop (the same search, no numba core)."""
    from ds2cli.decode.decoder import hypothesis_text
    from ds2cli.decode.beam import BeamSearch

    def search(e):
        s = BeamSearch(scorer, opts, compiled=None if compiled else False)
        s.advance(e)
        return s.finish()

    scorer = scorer_factory()
    if ems:  # load the compiled core (numba's cache) outside the timer, as pyctcdecode builds its decoder
        search(ems[0][:2])
    start = time.perf_counter()
    out = []
    for e in ems:
        if fresh_caches:  # drop the LM scores and states cached so far (pyctcdecode's are per call)
            scorer.trim(limit=0)
        out.append(hypothesis_text(search(e)[0].tokens, tokenizer))
    return out, time.perf_counter() - start


def run_pyctcdecode(ems, tokenizer, lm_path, vocab, alpha, beta, beam, unk_offset):
    from pyctcdecode import build_ctcdecoder

    labels = [""] + tokenizer.vocab[1:]
    # pyctcdecode adds its unknown-word offset to log10 LM scores before alpha * ln(10)
    dec = build_ctcdecoder(labels, kenlm_model_path=str(lm_path), unigrams=vocab, alpha=alpha, beta=beta,
                           unk_score_offset=unk_offset / math.log(10))
    start = time.perf_counter()
    out = [_norm(dec.decode(e, beam_width=beam)) for e in ems]
    return out, time.perf_counter() - start


def run_flashlight(ems, tokenizer, lm_path, vocab, alpha, beta, beam):
    import torch
    from torchaudio.models.decoder import ctc_decoder

    alphabet = set(tokenizer.vocab[1:]) - {" "}
    words = [w for w in vocab if set(w) <= alphabet]
    tmp = Path(tempfile.mkdtemp())
    (tmp / "lexicon.txt").write_text("".join(f"{w}\t{' '.join(w)} |\n" for w in words))
    tokens = ["-"] + ["|" if u == " " else u for u in tokenizer.vocab[1:]]
    # flashlight's KenLM scores are log10: lm_weight = alpha * ln(10) is the same objective
    dec = ctc_decoder(lexicon=str(tmp / "lexicon.txt"), tokens=tokens, lm=str(lm_path), beam_size=beam,
                      lm_weight=alpha * math.log(10), word_score=beta, sil_score=0.0)
    start = time.perf_counter()
    out = []
    for e in ems:
        hyp = dec(torch.from_numpy(np.ascontiguousarray(e, dtype=np.float32))[None])[0][0]
        out.append(_norm(" ".join(hyp.words)))
    return out, time.perf_counter() - start


# -- sections -----------------------------------------------------------------------------------
def compare(decoder, ems, refs, audio_s, beams, rounds: int = 3) -> list[dict]:
    """Every decoder on the same emissions, `rounds` alternating rounds (decoder after decoder, then
    again), so a slower or faster spell of a shared machine falls on all of them alike; each row
    keeps every round's seconds and reports the fastest."""
    from ds2cli.decode.lm_scorer import make_scorer

    cfg, tok, lm = decoder.config, decoder.tokenizer, decoder.lm
    factory = lambda: make_scorer(tok, lm, decoder.level, cfg.unk_offset)  # noqa: E731
    rows = []
    for beam in beams:
        opts = dataclasses.replace(cfg, beam_size=beam, nbest=1)
        plain = dataclasses.replace(opts, recombine=False, beam_threshold=float("inf"))
        lexicon = dataclasses.replace(opts, cutoff_prob=1.0, cutoff_top_n=len(tok))
        runs = [
            ("ds2cli", lambda: run_ours(ems, tok, factory, opts)),
            ("ds2cli (numpy loop)", lambda: run_ours(ems, tok, factory, opts, compiled=False)),
            ("ds2cli (LM caches reset per utterance)", lambda: run_ours(ems, tok, factory, opts, True)),
            ("ds2cli (no recombination, no beam threshold)", lambda: run_ours(ems, tok, factory, plain)),
            # flashlight's search space: only words of the LM vocabulary (unknown words cost e^-1000),
            # every token considered on every frame
            ("ds2cli (LM words only, no character pruning)",
             lambda: run_ours(ems, tok, lambda: make_scorer(tok, lm, decoder.level, WORDS_ONLY), lexicon)),
            ("pyctcdecode", lambda: run_pyctcdecode(ems, tok, lm.path, lm.vocab, cfg.alpha, cfg.beta, beam,
                                                    cfg.unk_offset)),
            ("torchaudio flashlight", lambda: run_flashlight(ems, tok, lm.path, lm.vocab, cfg.alpha, cfg.beta, beam)),
        ]
        outputs, seconds, unstable = {}, {name: [] for name, _ in runs}, set()
        for r in range(rounds):
            for name, fn in runs:
                hyps, sec = fn()
                if name in outputs and hyps != outputs[name]:
                    unstable.add(name)
                outputs[name] = hyps
                seconds[name].append(sec)
                print(f"round {r + 1} beam {beam:4d}  {name:45s} {sec:7.2f} s", flush=True)
        for name, _ in runs:
            best = min(seconds[name])
            rows.append({"decoder": name, "beam": beam, "wer": _wer(refs, outputs[name]), "seconds": best,
                         "rounds_seconds": seconds[name], "rtf": best / audio_s,
                         "transcripts_sha256": _digest(outputs[name]), "same_in_every_round": name not in unstable})
            print(f"beam {beam:4d}  {name:45s} WER {100 * rows[-1]['wer']:6.2f}%  RTF {rows[-1]['rtf']:.4f}",
                  flush=True)
        # search quality: whose transcript scores higher under the objective both maximise
        theirs = [objective(decoder, e, h) for e, h in zip(ems, outputs["pyctcdecode"])]
        for row in rows[-len(runs):]:
            if row["decoder"].startswith("ds2cli"):
                ours = [objective(decoder, e, h) for e, h in zip(ems, outputs[row["decoder"]])]
                row["objective_higher"] = sum(a > b + 1e-4 for a, b in zip(ours, theirs))
                row["objective_lower"] = sum(a < b - 1e-4 for a, b in zip(ours, theirs))
    return rows


def _digest(texts: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


def targets(rows: list[dict]) -> list[dict]:
    """Issue targets per beam: ds2cli at least 3x faster than pyctcdecode and faster than
    flashlight, at equal or better WER, with at least as many objective wins as losses; and the
    compiled core's transcripts identical to the numpy loop's."""
    out = []
    for beam in sorted({r["beam"] for r in rows}):
        by = {r["decoder"]: r for r in rows if r["beam"] == beam}
        ours, pyc, fl = by["ds2cli"], by["pyctcdecode"], by["torchaudio flashlight"]
        t = {"beam": beam, "speed_vs_pyctcdecode": pyc["seconds"] / ours["seconds"],
             "speed_vs_flashlight": fl["seconds"] / ours["seconds"],
             "wer_vs_pyctcdecode": ours["wer"] - pyc["wer"], "wer_vs_flashlight": ours["wer"] - fl["wer"],
             "objective_higher": ours["objective_higher"], "objective_lower": ours["objective_lower"]}
        if "ds2cli (numpy loop)" in by:
            numpy_row = by["ds2cli (numpy loop)"]
            t["compiled_vs_numpy_loop"] = numpy_row["seconds"] / ours["seconds"]
            t["identical_to_numpy_loop"] = numpy_row["transcripts_sha256"] == ours["transcripts_sha256"]
        like = by.get("ds2cli (LM words only, no character pruning)")
        if like is not None:  # the same search space as flashlight's
            t["words_only_unpruned_vs_flashlight"] = {"speed": fl["seconds"] / like["seconds"],
                                                      "wer": like["wer"] - fl["wer"]}
        t["met"] = {"3x_pyctcdecode": t["speed_vs_pyctcdecode"] >= 3.0,
                    "faster_than_flashlight": t["speed_vs_flashlight"] > 1.0,
                    "wer_not_worse_than_pyctcdecode": ours["wer"] <= pyc["wer"] + 1e-12,
                    "wer_not_worse_than_flashlight": ours["wer"] <= fl["wer"] + 1e-12,
                    "objective_wins_not_fewer": t["objective_higher"] >= t["objective_lower"]}
        out.append(t)
    return out


def objective(decoder, emissions, text: str) -> float:
    """log p_ctc (exact, summed over all alignments) + alpha ln p_lm (KenLM sentence score with
    </s>, unknown words charged the unknown-word offset) + beta words, of a transcript."""
    import torch

    cfg, tok = decoder.config, decoder.tokenizer
    ids = tok.encode(text)
    lp = torch.from_numpy(np.asarray(emissions, dtype=np.float32))[:, None, :]
    ctc = -float(torch.nn.functional.ctc_loss(lp, torch.tensor([ids]), torch.tensor([len(lp)]),
                                              torch.tensor([len(ids)]), reduction="sum"))
    words = text.split()
    model, vocab = _kenlm_model(decoder.lm)
    lm = model.score(" ".join(words), bos=True, eos=True) * math.log(10)
    lm += cfg.unk_offset * sum(w not in vocab for w in words)
    return ctc + cfg.alpha * lm + cfg.beta * len(words)


_KENLM: dict = {}


def _kenlm_model(lm):
    """kenlm.Model of a ds2cli LM and its vocabulary (the words the search counts as known)."""
    import kenlm

    key = str(lm.path)
    if key not in _KENLM:
        _KENLM[key] = kenlm.Model(key), set(lm.vocab)
    return _KENLM[key]


def sweep(decoder, ems, refs, beam, pairs) -> list[dict]:
    """WER of ds2cli and pyctcdecode over several (alpha, beta) pairs: one pair is a noisy
    comparison when the acoustic model is weak."""
    from ds2cli.decode.lm_scorer import make_scorer

    cfg, tok, lm = decoder.config, decoder.tokenizer, decoder.lm
    rows = []
    for alpha, beta in pairs:
        opts = dataclasses.replace(cfg, beam_size=beam, alpha=alpha, beta=beta, nbest=1)
        ours, _ = run_ours(ems, tok, lambda: make_scorer(tok, lm, decoder.level, cfg.unk_offset), opts)
        theirs, _ = run_pyctcdecode(ems, tok, lm.path, lm.vocab, alpha, beta, beam, cfg.unk_offset)
        rows.append({"alpha": alpha, "beta": beta, "ds2cli_wer": _wer(refs, ours), "pyctcdecode_wer": _wer(refs, theirs)})
        print(f"alpha {alpha} beta {beta}: ds2cli {100 * rows[-1]['ds2cli_wer']:.2f}%  "
              f"pyctcdecode {100 * rows[-1]['pyctcdecode_wer']:.2f}%", flush=True)
    return rows


def pruning(decoder, ems, refs, audio_s, beam) -> dict:
    from ds2cli.decode.lm_scorer import make_scorer

    cfg, tok = decoder.config, decoder.tokenizer
    factory = lambda: make_scorer(tok, decoder.lm, decoder.level, cfg.unk_offset)  # noqa: E731
    out = {}
    for name, (cut, top) in {"pruned": (cfg.cutoff_prob, cfg.cutoff_top_n), "unpruned": (1.0, len(tok))}.items():
        opts = dataclasses.replace(cfg, beam_size=beam, cutoff_prob=cut, cutoff_top_n=top, nbest=1)
        hyps, seconds = run_ours(ems, tok, factory, opts)
        out[name] = {"cutoff_prob": cut, "cutoff_top_n": top, "wer": _wer(refs, hyps), "seconds": seconds,
                     "rtf": seconds / audio_s}
        print(f"beam {beam} {name:9s} cutoff {cut} top {top:3d}: WER {100 * out[name]['wer']:.2f}%  "
              f"RTF {out[name]['rtf']:.4f}", flush=True)
    out["speedup"] = out["unpruned"]["seconds"] / out["pruned"]["seconds"]
    out["wer_difference"] = out["pruned"]["wer"] - out["unpruned"]["wer"]
    return out


def precision(checkpoint, manifest, lm, limit) -> dict:
    from ds2cli.decode.decoder import hypothesis_text, load_decoder
    from ds2cli.decode.beam import greedy_search

    out = {}
    for prec in ("fp32", "bf16"):
        dec = load_decoder(checkpoint, lm=str(lm), options={"precision": prec})
        start = time.perf_counter()
        _, refs, ems, audio_s = load_set(dec, manifest, limit)
        net = time.perf_counter() - start
        greedy = [hypothesis_text(greedy_search(e).tokens, dec.tokenizer) for e in ems]
        beam = [hypothesis_text(dec.search(e)[0].tokens, dec.tokenizer) for e in ems]
        out[prec] = {"greedy_wer": _wer(refs, greedy), "lm_wer": _wer(refs, beam), "network_rtf": net / audio_s}
        print(f"{prec}: greedy WER {100 * out[prec]['greedy_wer']:.2f}%  LM WER {100 * out[prec]['lm_wer']:.2f}%",
              flush=True)
    out["lm_wer_difference"] = out["bf16"]["lm_wer"] - out["fp32"]["lm_wer"]
    out["greedy_wer_difference"] = out["bf16"]["greedy_wer"] - out["fp32"]["greedy_wer"]
    return out


def recipes(exp_dirs, limit) -> dict:
    """Greedy and LM WER on each experiment's test split with its recipe LM and decode settings."""
    from ds2cli.decode.decoder import load_decoder

    out = {}
    for exp_dir in map(Path, exp_dirs):
        ckpt = exp_dir / "checkpoints" / "best.pt"
        if not ckpt.is_file():
            print(f"{exp_dir}: no checkpoints/best.pt, skipped", flush=True)
            continue
        dec = load_decoder(ckpt)
        manifest = exp_dir / "manifests" / "test.jsonl"
        rep = dec.decode_manifest(manifest, out=exp_dir / "decode_test.jsonl")
        out[exp_dir.name] = {"greedy_wer": rep.greedy_wer, "lm_wer": rep.wer, "utterances": len(rep.transcripts),
                             "alpha": dec.config.alpha, "beta": dec.config.beta, "beam": dec.config.beam_size,
                             "lm": shown(dec.meta["lm"], exp_dir.parent), "alpha_beta_from": dec.meta["alpha_beta_from"]}
        print(f"{exp_dir.name}: {rep.summary()}", flush=True)
    return out


def markdown(res: dict) -> str:
    lines = [f"## Decoding benchmark: {res.get('title') or 'model'}", ""] + ([res["note"], ""] if res.get("note") else [])
    s = res.get("setup", {})
    if s and res.get("compare"):
        rounds = max(len(r.get("rounds_seconds", [0])) for r in res["compare"])
        lines += [f"Same emissions ({s['utterances']} utterances, {s['audio_seconds']:.0f} s of audio, "
                  f"{s['frames']} frames, from `{s['checkpoint']}` on `{s['manifest']}`), same KenLM model "
                  f"(`{s['lm']}`), alpha {s['alpha']}, beta {s['beta']}; one CPU thread. Greedy WER "
                  f"{100 * s['greedy_wer']:.2f}%. Seconds: the fastest of {rounds} alternating rounds (range "
                  f"in brackets).",
                  "", "| decoder | beam | WER % | seconds | real-time factor | speed vs pyctcdecode | "
                  "objective higher / lower than pyctcdecode's |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in res["compare"]:
            ref = next(r for r in res["compare"] if r["beam"] == row["beam"] and r["decoder"] == "pyctcdecode")
            versus = f"{row['objective_higher']} / {row['objective_lower']}" if "objective_higher" in row else "-"
            spread = row.get("rounds_seconds", [row["seconds"]])
            lines.append(f"| {row['decoder']} | {row['beam']} | {100 * row['wer']:.2f} | {row['seconds']:.2f} "
                         f"({min(spread):.2f}-{max(spread):.2f}) | {row['rtf']:.5f} | "
                         f"{ref['seconds'] / row['seconds']:.1f}x | {versus} |")
        for t in res.get("targets", []):
            met = t["met"]
            lines += ["", f"Targets at beam {t['beam']}: {t['speed_vs_pyctcdecode']:.1f}x pyctcdecode's speed "
                      f"(at least 3x: {_yes(met['3x_pyctcdecode'])}), {t['speed_vs_flashlight']:.1f}x "
                      f"flashlight's (faster: {_yes(met['faster_than_flashlight'])}), WER "
                      f"{100 * t['wer_vs_pyctcdecode']:+.2f} points against pyctcdecode and "
                      f"{100 * t['wer_vs_flashlight']:+.2f} against flashlight (not worse: "
                      f"{_yes(met['wer_not_worse_than_pyctcdecode'])} / "
                      f"{_yes(met['wer_not_worse_than_flashlight'])}), objective {t['objective_higher']} higher / "
                      f"{t['objective_lower']} lower (not fewer wins: {_yes(met['objective_wins_not_fewer'])})."]
            if not met["wer_not_worse_than_pyctcdecode"] and t["objective_higher"] > t["objective_lower"]:
                lines[-1] += (" ds2cli's transcripts score higher than pyctcdecode's under the objective both "
                              "maximise more often than lower: the WER gap is the objective's (alpha, beta, "
                              "unknown-word cost), not search errors.")
            if "words_only_unpruned_vs_flashlight" in t:
                w = t["words_only_unpruned_vs_flashlight"]
                lines[-1] += (f" In flashlight's search space (LM words only, no character pruning) ds2cli is "
                              f"{w['speed']:.1f}x flashlight's speed at {100 * w['wer']:+.2f} points of WER.")
            if "compiled_vs_numpy_loop" in t:
                lines[-1] += (f" Compiled core {t['compiled_vs_numpy_loop']:.1f}x faster than the numpy loop, "
                              f"transcripts identical: {'yes' if t['identical_to_numpy_loop'] else 'NO'}.")
        lines += ["", "pyctcdecode runs with its default pruning (token_min_logp -5, beam_prune_logp -10); "
                  "flashlight with its lexicon (LM vocabulary) and beam_threshold 50; ds2cli with DS2 "
                  f"character pruning (cutoff {s['cutoff_prob']}, top {s['cutoff_top_n']}), beam threshold 10 and "
                  "recombination (its defaults); its numpy-loop row is the same search without the compiled "
                  "core, its 'LM words only, no character pruning' row searches what flashlight "
                  "searches: only words of the LM vocabulary (its lexicon), every token on every frame. The objective column counts utterances where ds2cli's transcript scores higher / "
                  "lower than pyctcdecode's under the objective both maximise (exact CTC sum, KenLM, word "
                  "bonus): fewer search errors, not luck, when the first number is larger."]
    if res.get("sweep"):
        sw = res["sweep"]
        wins = sum(r["ds2cli_wer"] <= r["pyctcdecode_wer"] for r in sw)
        lines += ["", f"WER over {len(sw)} (alpha, beta) pairs at beam {res['sweep_beam']} (ds2cli equal or better "
                  f"on {wins}):", "", "| alpha | beta | ds2cli WER % | pyctcdecode WER % |", "| ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['alpha']} | {r['beta']} | {100 * r['ds2cli_wer']:.2f} | {100 * r['pyctcdecode_wer']:.2f} |"
                  for r in sw]
    if "pruning" in res:
        p = res["pruning"]
        lines += ["", f"**Character pruning** (ds2cli, beam {p['beam']}): cutoff {p['pruned']['cutoff_prob']} / "
                  f"top {p['pruned']['cutoff_top_n']} is {p['speedup']:.1f}x faster than no pruning, WER "
                  f"{100 * p['pruned']['wer']:.2f}% vs {100 * p['unpruned']['wer']:.2f}% "
                  f"(difference {100 * p['wer_difference']:+.2f} points)."]
    if "precision" in res:
        q = res["precision"]
        lines += ["", f"**bf16 inference**: LM WER {100 * q['bf16']['lm_wer']:.2f}% vs fp32 "
                  f"{100 * q['fp32']['lm_wer']:.2f}% (difference {100 * q['lm_wer_difference']:+.2f} points); "
                  f"greedy {100 * q['bf16']['greedy_wer']:.2f}% vs {100 * q['fp32']['greedy_wer']:.2f}%."]
    if res.get("recipes"):
        lines += ["", "| recipe (test split) | greedy WER % | LM WER % | beam | alpha | beta |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in res["recipes"].items():
            lines.append(f"| {name} | {100 * r['greedy_wer']:.2f} | {100 * r['lm_wer']:.2f} | {r['beam']} | "
                         f"{r['alpha']} | {r['beta']} |")
    lines += ["", f"Reproduce: `python -m benchmarks.decode_compare {res.get('command', '')}`"]
    lines += [f"and `python -m benchmarks.decode_compare {c}`" for c in res.get("more_commands", [])]
    return "\n".join(lines) + "\n"


def _yes(flag: bool) -> str:
    return "met" if flag else "NOT met"


def shown(path, exp_root: Path | None = None) -> str:
    """A path as results record it: relative to the repository, else to the experiments' root
    (exp-dir/checkpoints/best.pt -> NAME/checkpoints/best.pt), never this machine's absolute path."""
    path = Path(path).resolve()
    for root in (Path(__file__).resolve().parent.parent, exp_root):
        if root is not None and path.is_relative_to(root.resolve()):
            return str(path.relative_to(root.resolve()))
    return path.name


def _shown_command(argv: list[str], exp_root: Path | None) -> str:
    """The arguments with paths shown as results record them and the note left out (it heads the section)."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--note="):
            skip = False
            continue
        if a == "--note":
            skip = True
            continue
        out.append(shown(a, exp_root) if a.startswith("/") else a)
    return " ".join(out)


SECTIONS = ("decode_tiny_stream.json", "decode_arctic.json", "decode_digits.json")


def model_files(results: Path = RESULTS) -> list[Path]:
    """The per-model results: the demo's model, ARCTIC, digits, then any other decode_*.json with a comparison."""
    files = [results / n for n in SECTIONS if (results / n).is_file()]
    return files + sorted(f for f in results.glob("decode_*.json") if f not in files and f.name != "decode_split.json"
                          and "compare" in json.loads(f.read_text()))


def md_text(results: Path = RESULTS) -> str:
    """decode.md: a section per model's decode_*.json, then decode_split's."""
    parts = ["# Decoding\n"] + [markdown(json.loads(f.read_text())) for f in model_files(results)]
    split = results / "decode_split.json"
    if split.is_file():
        from benchmarks.decode_split import markdown as split_md

        parts.append(split_md(json.loads(split.read_text())))
    return "\n".join(parts)


def write_md(results: Path = RESULTS) -> Path:
    out = results / "decode.md"
    out.write_text(md_text(results))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", help="experiment: its checkpoints/best.pt, manifests/test.jsonl and lm/lm.bin")
    p.add_argument("--checkpoint")
    p.add_argument("--manifest")
    p.add_argument("--lm")
    p.add_argument("--beams", type=int, nargs="+", default=[100, 500])
    p.add_argument("--alpha", type=float)
    p.add_argument("--beta", type=float)
    p.add_argument("--limit", type=int, help="decode only the first N utterances")
    p.add_argument("--recipes", nargs="*", default=[], help="experiment dirs for greedy vs LM WER")
    p.add_argument("--skip", nargs="*", default=[], choices=["compare", "sweep", "pruning", "precision"])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of every decoder")
    p.add_argument("--out", default=str(RESULTS / "decode.json"))
    p.add_argument("--title", help="the model's name in decode.md  [default: from --out]")
    p.add_argument("--note", help="a sentence about the model, printed at the top of the markdown")
    p.add_argument("--merge", action="store_true",
                   help="add the sections run now to those already in --out (e.g. a sweep after a comparison)")
    args = p.parse_args(argv)
    ckpt_dir = Path(args.checkpoint).resolve().parent if args.checkpoint else None
    exp_root = Path(args.exp_dir).resolve().parent if args.exp_dir else (
        ckpt_dir.parent.parent if ckpt_dir is not None and ckpt_dir.name == "checkpoints" else None)
    command = _shown_command(sys.argv[1:] if argv is None else list(argv), exp_root)

    import torch

    from ds2cli.decode.decoder import hypothesis_text, load_decoder
    from ds2cli.decode.beam import greedy_search

    torch.set_num_threads(1)
    title = args.title or Path(args.out).stem.removeprefix("decode_").replace("_", "-")
    res = {"title": title, "note": args.note, "command": command, "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                       "processor": platform.processor(), "threads": 1}}
    if args.exp_dir or args.checkpoint:
        exp = Path(args.exp_dir) if args.exp_dir else None
        checkpoint = args.checkpoint or str(exp / "checkpoints" / "best.pt")
        manifest = args.manifest or str(exp / "manifests" / "test.jsonl")
        options = {"alpha": args.alpha, "beta": args.beta}
        decoder = load_decoder(checkpoint, lm=args.lm, options=options)
        if decoder.lm is None:
            raise SystemExit("no LM: pass --lm or an experiment with lm_text.txt")
        ids, refs, ems, audio_s = load_set(decoder, manifest, args.limit)
        greedy = _wer(refs, [hypothesis_text(greedy_search(e).tokens, decoder.tokenizer) for e in ems])
        res["setup"] = {"checkpoint": shown(checkpoint, exp_root), "manifest": shown(manifest, exp_root),
                        "lm": shown(decoder.lm.path, exp_root),
                        "utterances": len(ids), "audio_seconds": audio_s, "frames": int(sum(len(e) for e in ems)),
                        "alpha": decoder.config.alpha, "beta": decoder.config.beta,
                        "cutoff_prob": decoder.config.cutoff_prob, "cutoff_top_n": decoder.config.cutoff_top_n,
                        "unk_offset": decoder.config.unk_offset, "greedy_wer": greedy}
        print(f"{len(ids)} utterances, {audio_s:.0f} s audio, greedy WER {100 * greedy:.2f}%", flush=True)
        if "compare" not in args.skip:
            res["compare"] = compare(decoder, ems, refs, audio_s, args.beams, args.rounds)
            res["targets"] = targets(res["compare"])
        if "sweep" not in args.skip:
            a, b = decoder.config.alpha, decoder.config.beta
            pairs = [(a, b), (0.3, 1.0), (0.5, 2.0), (0.8, 2.0), (0.8, 3.0), (1.0, 3.0), (1.2, 4.0)]
            res["sweep_beam"] = min(args.beams)
            res["sweep"] = sweep(decoder, ems, refs, min(args.beams), pairs)
        if "pruning" not in args.skip:
            res["pruning"] = {"beam": max(args.beams), **pruning(decoder, ems, refs, audio_s, max(args.beams))}
        if "precision" not in args.skip:
            res["precision"] = precision(checkpoint, manifest, decoder.lm.path, args.limit)
    if args.recipes:
        res["recipes"] = recipes(args.recipes, args.limit)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and out.is_file():
        old = json.loads(out.read_text())
        old.update({k: v for k, v in res.items() if k not in ("title", "note", "command", "machine", "setup")})
        old["more_commands"] = old.get("more_commands", []) + [command]
        res = old
    write_result(out, res, markdown)
    return res


def write_result(out: Path, res: dict, to_markdown) -> None:
    """The JSON, then decode.md from every decode_*.json beside it (or OUT.md from this one alone)."""
    from ds2cli.fileio import write_json

    write_json(out, res)
    if out.name.startswith("decode_"):
        md = write_md(out.parent)
    else:
        md = out.with_suffix(".md")
        md.write_text(to_markdown(res))
    print(f"wrote {out.name} and {md.name}")


if __name__ == "__main__":
    main()
