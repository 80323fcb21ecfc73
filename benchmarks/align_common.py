"""Shared by the align_* benchmarks: the corpora (spliced FSDD digit strings with known word times;
CMU ARCTIC by its prompt split), and the model: a given checkpoint, the project's trained recipe
(exp/<recipe>/checkpoints/best.pt), or one trained here within a time budget and cached under
benchmarks/scratch/align/. Every result records which model was used and how it was made."""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

from benchmarks.paths import shown, stamped

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WORK = REPO / "benchmarks" / "scratch" / "align"
RESULTS = REPO / "benchmarks" / "results"

DIGITS_TRAIN_TAKES = range(5, 50)  # FSDD's official split: takes 0-4 are test
DIGITS_TEST_TAKES = range(0, 5)


def digits_manifest(split: str, n: int, seed: int) -> Path:
    """`n` spliced connected-digit strings (2-5 digits, one speaker each) from FSDD's `split` takes,
    written once to benchmarks/scratch/align/digits-<split>-<n>-<seed>/ with manifest.jsonl and the
    true word times (words.jsonl)."""
    from ds2cli.align.splice import fsdd_strings
    from ds2cli.audio import write_audio
    from ds2cli.fileio import write_jsonl

    folder = WORK / f"digits-{split}-{n}-{seed}"
    manifest = folder / "manifest.jsonl"
    if manifest.is_file():
        return manifest
    takes = DIGITS_TRAIN_TAKES if split == "train" else DIGITS_TEST_TAKES
    utts = fsdd_strings(DATA / "fsdd" / "recordings", n, random.Random(seed), takes)
    rows, truth = [], []
    for i, u in enumerate(utts):
        path = folder / "audio" / f"{split}{i:05d}.wav"
        write_audio(path, u.wave, u.sample_rate)
        rows.append({"audio_filepath": str(path), "duration": round(u.duration, 4), "text": u.text,
                     "id": path.stem})
        truth.append({"id": path.stem, "words": u.words})
    write_jsonl(folder / "words.jsonl", truth)
    write_jsonl(manifest, rows)
    return manifest


def word_truth(manifest: Path) -> dict[str, list[dict]]:
    lines = (manifest.parent / "words.jsonl").read_text().splitlines()
    return {r["id"]: r["words"] for r in map(json.loads, lines)}


def arctic_rows(split: str, limit: int = 0, seed: int = 0) -> list[dict]:
    """ARCTIC utterances of a split (train / dev / test by prompt, as data_prep.arctic splits them),
    normalised text, optionally a random `limit` of them."""
    from ds2cli.data_prep.arctic import collect
    from ds2cli.audio import audio_info
    from ds2cli.text import normalize

    from ds2cli.text import CharTokenizer

    english = CharTokenizer.english()
    items = [it for it in collect(DATA / "arctic-cathy", WORK).splits[split]
             if not english.unknown(normalize(it.text, "en"))]  # as `ds2cli prepare` drops them
    if limit and limit < len(items):
        items = random.Random(seed).sample(items, limit)
    return [{"audio_filepath": it.audio_filepath, "duration": audio_info(it.audio_filepath).duration,
             "text": normalize(it.text, "en"), "id": it.id} for it in items]


def corpus_rows(corpus: str, split: str, n: int, seed: int) -> list[dict]:
    from ds2cli.manifest import read_manifest

    if corpus == "digits":
        return read_manifest(digits_manifest(split, n, seed))
    return arctic_rows(split, n, seed)


# Models trained here when no checkpoint is given and the recipe has not been trained.
MODELS = {
    "digits": {"conv_channels": 128, "rnn_layers": 1, "rnn_hidden": 128, "train_utts": 600,
               "budget_s": 600},
    "arctic": {"conv_channels": 192, "rnn_layers": 2, "rnn_hidden": 192, "train_utts": 0,
               "budget_s": 1800},
}


def find_checkpoint(corpus: str, given: str | None, budget_s: float | None = None) -> tuple[Path, dict]:
    """(checkpoint path, provenance): `given`; else exp/<corpus>/checkpoints/best.pt from the
    project's recipe; else a model trained here (cached)."""
    if given:
        return Path(given), {"source": "given", "checkpoint": shown(given)}
    recipe_ckpt = REPO / "exp" / corpus / "checkpoints" / "best.pt"
    if recipe_ckpt.is_file():
        return recipe_ckpt, {"source": f"recipe {corpus} (ds2cli train)", "checkpoint": shown(recipe_ckpt)}
    cached = WORK / f"{corpus}-model.pt"
    info_path = cached.with_suffix(".json")
    if not cached.is_file():
        spec = dict(MODELS[corpus])
        if budget_s:
            spec["budget_s"] = budget_s
        info = train_budget(corpus, cached, **spec)
        info_path.write_text(json.dumps(info, indent=2))
    return cached, json.loads(info_path.read_text())


def train_budget(corpus: str, out: Path, conv_channels: int, rnn_layers: int, rnn_hidden: int,
                 train_utts: int, budget_s: float, seed: int = 0, batch_size: int = 16) -> dict:
    """Train a small DS2 (1D conv, stride 2, bidirectional GRU) with CTC for `budget_s` seconds of
    wall time on the corpus's train split (Adam, linear decay over the budget). One thread."""
    import torch

    from ds2cli.audio import read_audio
    from ds2cli.checkpoint import build_checkpoint, save_checkpoint
    from ds2cli.features import FeatureConfig, compute_stats, log_spectrogram
    from ds2cli.model import ConvLayer, DeepSpeech2, ModelConfig
    from ds2cli.text import CharTokenizer

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rows = corpus_rows(corpus, "train", train_utts, seed)
    cfg, tok = FeatureConfig(), CharTokenizer.english()
    waves = [read_audio(r["audio_filepath"], cfg.sample_rate) for r in rows]
    stats = compute_stats(waves[:500], cfg)
    feats = [stats.normalise(log_spectrogram(torch.from_numpy(w), cfg)) for w in waves]
    del waves
    targets = [torch.tensor(tok.encode(r["text"])) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: feats[i].shape[0])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    mc = ModelConfig(conv_type="1d", conv=[ConvLayer(conv_channels, (1, 11), (1, 2))], rnn_type="gru",
                     rnn_layers=rnn_layers, rnn_hidden=rnn_hidden)
    model = DeepSpeech2(mc, len(tok))
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    rng = random.Random(seed)
    start, step, epoch, loss = time.time(), 0, 0, math.nan
    while time.time() - start < budget_s:
        rng.shuffle(batches)
        for idx in batches:
            frac = (time.time() - start) / budget_s
            if frac >= 1:
                break
            for g in opt.param_groups:
                g["lr"] = 2e-3 * min(1.0, (step + 1) / 30) * max(0.05, 1 - frac)
            lengths = torch.tensor([feats[i].shape[0] for i in idx])
            x = torch.zeros(len(idx), int(lengths.max()), cfg.n_bins)
            for j, i in enumerate(idx):
                x[j, : lengths[j]] = feats[i]
            logits, out_lengths = model(x, lengths)
            value = ctc(logits.log_softmax(-1).transpose(0, 1), torch.cat([targets[i] for i in idx]),
                        out_lengths, torch.tensor([len(targets[i]) for i in idx]))
            opt.zero_grad()
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step, loss = step + 1, value.item()
        epoch += 1
    model.eval()
    info = {"source": "trained by benchmarks/align_common.py (no recipe checkpoint found)",
            "checkpoint": shown(out), "corpus": corpus, "train_utterances": len(rows),
            "train_audio_minutes": round(sum(f.shape[0] for f in feats) / 100 / 60, 1),
            "model": mc.to_dict(), "parameters": model.num_parameters(), "steps": step, "epochs": epoch,
            "wall_seconds": round(time.time() - start), "final_loss": round(loss, 3), "threads": 1,
            "optimizer": "adam 2e-3, 30 warm-up steps, linear decay over the budget, batch 16"}
    save_checkpoint(out, build_checkpoint(model, tok, cfg, stats, metrics=info))
    return info


def greedy_cer(recognizer, rows: list[dict], batch_size: int = 16) -> float:
    """Greedy CER of the model on rows (how good the aligning model is)."""
    from ds2cli.align.aligner import emissions
    from ds2cli.ctc import greedy_text
    from ds2cli.metrics import cer

    hyps, refs = [], []
    for e in emissions(rows, recognizer, batch_size):
        hyps.append(greedy_text(e.log_probs, recognizer.tokenizer))
        refs.append(e.row["text"])
    return cer(refs, hyps)


def write_result(name: str, result: dict) -> Path:
    from ds2cli.fileio import write_json

    path = RESULTS / f"{name}.json"
    write_json(path, stamped(result))
    return path
