"""Choosing alpha (LM weight) and beta (word bonus) on a development set.

The network runs once; its emissions are cached (on disk, keyed by checkpoint and manifest) and
pruned once; then each (alpha, beta) pair costs only a beam search over the cache, which also
reuses the LM's score caches. Reports greedy WER, the best LM WER and the oracle WER (the best
hypothesis of each n-best list at the chosen pair)."""
from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ds2cli.decode.beam import beam_search, greedy_search, prune_log_probs
from ds2cli.decode.config import DecodeConfig
from ds2cli.decode.lm_scorer import Scorer
from ds2cli.metrics import score_pairs


@dataclass
class Trial:
    alpha: float
    beta: float
    wer: float
    seconds: float


@dataclass
class TuneResult:
    alpha: float
    beta: float
    wer: float  # best LM WER (CER for Mandarin)
    greedy_wer: float
    oracle_wer: float
    trials: list[Trial] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["trials"] = [dataclasses.asdict(t) for t in self.trials]
        return d


def grid(alpha_range: tuple[float, float], beta_range: tuple[float, float], points: int,
         method: str = "grid", seed: int = 0) -> list[tuple[float, float]]:
    """(alpha, beta) pairs: a points x points grid over the ranges, or `points` random pairs."""
    if method == "random":
        rng = random.Random(seed)
        return [(round(rng.uniform(*alpha_range), 4), round(rng.uniform(*beta_range), 4)) for _ in range(points)]
    if method != "grid":
        raise ValueError(f"search method must be 'grid' or 'random', not {method!r}")
    alphas = np.linspace(alpha_range[0], alpha_range[1], points) if points > 1 else np.array([alpha_range[0]])
    betas = np.linspace(beta_range[0], beta_range[1], points) if points > 1 else np.array([beta_range[0]])
    return [(round(float(a), 4), round(float(b), 4)) for a in alphas for b in betas]


def _wer(refs: list[str], hyps: list[str], language: str) -> float:
    return score_pairs([(str(i), r, h) for i, (r, h) in enumerate(zip(refs, hyps))], language).wer.rate


def tune(emissions: list[np.ndarray], refs: list[str], tokenizer, scorer: Scorer, base: DecodeConfig,
         pairs: list[tuple[float, float]], on_trial: Callable[[Trial, Trial], None] | None = None) -> TuneResult:
    """Search `pairs` of (alpha, beta) on cached emissions (each (T, V) log-probs) with normalised
    references. `on_trial(trial, best_so_far)` is called after each pair. Ties keep the first pair tried."""
    from ds2cli.decode.decoder import hypothesis_text

    if not pairs:
        raise ValueError("no (alpha, beta) pairs to try")
    language = tokenizer.language
    lps = [np.asarray(e, dtype=np.float64) for e in emissions]
    pruned = [prune_log_probs(lp, base.cutoff_prob, base.cutoff_top_n) for lp in lps]
    greedy = _wer(refs, [hypothesis_text(greedy_search(lp).tokens, tokenizer) for lp in lps], language)

    def decode(alpha, beta, nbest=1):
        opts = dataclasses.replace(base, alpha=alpha, beta=beta, nbest=nbest)
        return [beam_search(lp, scorer, opts, pr) for lp, pr in zip(lps, pruned)]

    trials, best = [], None
    for alpha, beta in pairs:
        start = time.perf_counter()
        hyps = [h[0] for h in decode(alpha, beta)]
        trial = Trial(alpha, beta, _wer(refs, [hypothesis_text(h.tokens, tokenizer) for h in hyps], language),
                      time.perf_counter() - start)
        trials.append(trial)
        if best is None or trial.wer < best.wer:
            best = trial
        if on_trial:
            on_trial(trial, best)
    nbests = decode(best.alpha, best.beta, nbest=base.beam_size)
    oracle = []
    for ref, hyps in zip(refs, nbests):
        texts = [hypothesis_text(h.tokens, tokenizer) for h in hyps]
        oracle.append(min(texts, key=lambda t: (score_pairs([("u", ref, t)], language).wer.errors)))
    return TuneResult(best.alpha, best.beta, best.wer, greedy, _wer(refs, oracle, language), trials)


def emission_cache_key(checkpoint, manifest, precision: str) -> str:
    """Changes whenever the checkpoint, the manifest or the precision does."""
    parts = [precision]
    for p in (checkpoint, manifest):
        st = Path(p).stat()
        parts += [str(Path(p).resolve()), str(st.st_size), str(st.st_mtime_ns)]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def cached_emissions(decoder, manifest, cache_dir, quiet: bool = True):
    """(ids, references, emissions, skipped) for a manifest: from cache_dir if this checkpoint
    and manifest were seen before, else by running the network once (and caching the result)."""
    import torch

    from ds2cli.fileio import torch_save
    from ds2cli.manifest import read_manifest
    from ds2cli.progress import progress
    from ds2cli.text import normalize

    rec = decoder.recognizer
    rows = read_manifest(manifest)
    key = emission_cache_key(rec.checkpoint_path, manifest, rec.precision)
    path = Path(cache_dir) / f"emissions-{key}.pt"
    if path.is_file():
        data = torch.load(path, map_location="cpu", weights_only=True)
        return data["ids"], data["refs"], [e.numpy() for e in data["emissions"]], data["skipped"]
    ids, refs, ems, skipped = [], [], [], []
    batch = decoder.config.batch_size
    for i in progress(range(0, len(rows), batch), desc="emissions", quiet=quiet, unit="batch"):
        waves, ok, bad = decoder.read_rows(rows[i:i + batch])
        skipped += [list(b) for b in bad]
        if waves:
            ems += rec.emissions(waves, batch_size=batch)
            ids += [r["id"] for r in ok]
            refs += [normalize(r["text"], rec.tokenizer.language) for r in ok]
    torch_save({"ids": ids, "refs": refs, "emissions": [torch.as_tensor(e) for e in ems],
                "skipped": skipped}, path)
    return ids, refs, [np.asarray(e) for e in ems], skipped
