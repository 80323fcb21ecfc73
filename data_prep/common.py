"""What every corpus shares: validating items (audio header, transcript), writing manifests, the
alphabet, the LM training text and the feature statistics, and the skip report."""
from __future__ import annotations

import importlib
import inspect
import json
import multiprocessing
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ds2cli.audio import audio_info
from ds2cli.errors import AudioError, DS2Error
from ds2cli.fileio import write_json, write_text
from ds2cli.lock import locks_folder
from ds2cli.manifest import write_manifest
from ds2cli.text import BpeTokenizer, CharTokenizer, normalize

DONE_MARKER = ".prepared"


@dataclass
class Item:
    """One utterance as a preparer finds it; `text` is the raw transcript."""

    audio_filepath: str
    text: str
    id: str
    speaker: str | None = None
    offset: float | None = None
    duration: float | None = None  # only with `offset`: the segment's length (< 0: to the end)
    gender: str | None = None


@dataclass
class Skip:
    reason: str  # short and countable: "unreadable audio", "missing transcript", ...
    path: str
    message: str  # one line naming the file and the problem


@dataclass
class Collected:
    splits: dict[str, list[Item]]
    skipped: list[Skip] = field(default_factory=list)
    language: str = "en"


@dataclass
class DataConfig:
    """The [data] section of a recipe."""

    corpus: str = "synth"
    data_dir: str = ""  # the corpus folder (not needed for synth)
    units: str = "char"  # "char" or "bpe"
    vocab_size: int = 0  # sentencepiece vocabulary size for units = "bpe"
    jobs: int = 2
    seed: int = 0
    stats_utterances: int = 500
    options: dict = field(default_factory=dict)  # corpus-specific, passed to its collect()

    def __post_init__(self):
        from ds2cli.validation import check_fields

        check_fields(self, {"vocab_size": ">= 0", "jobs": ">= 1", "seed": ">= 0", "stats_utterances": ">= 1"})
        if self.units not in ("char", "bpe"):
            raise ValueError(f"units must be 'char' or 'bpe', not {self.units!r}")
        if not isinstance(self.options, dict):
            raise ValueError(f"options must be a table, not {self.options!r}")


def prepare_recipe(recipe: dict, out_dir, *, data_dir: str | None = None, jobs: int | None = None,
                   force: bool = False, quiet: bool = True) -> "PrepareReport":
    """Run the preparation a recipe's [data] section describes into `out_dir`."""
    from ds2cli.recipe import section

    from ds2cli.features import FeatureConfig

    cfg = section(recipe, "data", DataConfig)
    features = section(recipe, "features", FeatureConfig)
    folder = corpus_folder(recipe, data_dir)
    return prepare(cfg.corpus, folder, out_dir, jobs=jobs or cfg.jobs, seed=cfg.seed, units=cfg.units,
                   vocab_size=cfg.vocab_size or None, stats_utterances=cfg.stats_utterances,
                   force=force, quiet=quiet, feature_config=features, **cfg.options)


def corpus_folder(recipe: dict, data_dir: str | None = None) -> str | None:
    """--data-dir, else the recipe's [data] data_dir; a DS2Error when a corpus on disk has neither."""
    from ds2cli.recipe import section

    cfg = section(recipe, "data", DataConfig)
    folder = data_dir or cfg.data_dir or None
    if folder is None and needs_folder(cfg.corpus):
        raise DS2Error(f"recipe {recipe.get('name', '?')}: the {cfg.corpus} corpus is read from disk; "
                       "give its folder with --data-dir DIR")
    return folder


@dataclass
class PrepareReport:
    corpus: str
    out_dir: str
    splits: dict[str, dict]  # split -> {"utterances", "hours", "manifest"}
    skipped: dict[str, int]  # reason -> count
    skipped_items: list[dict]
    tokenizer: str
    vocab_size: int
    feature_stats: str
    lm_text: str
    seconds: float

    def summary(self) -> str:
        parts = [f"{s}: {v['utterances']} utts, {v['hours']:.2f} h" for s, v in self.splits.items()]
        skipped = sum(self.skipped.values())
        tail = f"; skipped {skipped} (" + ", ".join(f"{r}: {n}" for r, n in self.skipped.items()) + ")" if skipped else ""
        return f"{self.corpus}: " + "; ".join(parts) + f"; vocab {self.vocab_size}{tail} -> {self.out_dir}"


def load_preparer(name: str):
    from ds2cli.data_prep import PREPARERS

    if name not in PREPARERS:
        raise DS2Error(f"unknown corpus {name!r}; choose from {', '.join(PREPARERS)}")
    return importlib.import_module(PREPARERS[name])


def needs_folder(corpus: str) -> bool:
    """Every corpus but the generated one is read from a folder on disk."""
    return corpus != "synth"


def is_prepared(out_dir) -> bool:
    return (Path(out_dir) / DONE_MARKER).is_file()


@locks_folder("prepare")
def prepare(corpus: str, corpus_dir, out_dir, *, jobs: int = 1, seed: int = 0, units: str = "char",
            vocab_size: int | None = None, stats_utterances: int = 500, force: bool = False,
            quiet: bool = True, feature_config=None, **options) -> PrepareReport:
    """Prepare `corpus` into `out_dir`: manifests/<split>.jsonl, tokenizer.json, feature_stats.json,
    lm_text.txt (training transcripts, for the LM) and prepare_report.json. Re-running a finished
    preparation is a no-op unless `force`. One run at a time per `out_dir` (ds2cli.lock)."""
    out_dir = Path(out_dir).resolve()  # manifests hold absolute paths
    if is_prepared(out_dir) and not force:
        return PrepareReport(**json.loads((out_dir / "prepare_report.json").read_text()))
    start = time.time()
    (out_dir / DONE_MARKER).unlink(missing_ok=True)
    module = load_preparer(corpus)
    if corpus_dir is None and needs_folder(corpus):
        raise DS2Error(f"{corpus}: the corpus is read from disk; give its folder (ds2cli prepare {corpus} DIR)")
    if corpus_dir is not None and not Path(corpus_dir).is_dir():
        raise DS2Error(f"{corpus_dir}: corpus folder not found")
    accepted = inspect.signature(module.collect).parameters
    if "quiet" in accepted:
        options["quiet"] = quiet
    unknown = sorted(set(options) - set(accepted))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        known = [n for n, p in accepted.items() if p.kind is p.KEYWORD_ONLY and n not in ("jobs", "seed", "quiet")]
        raise DS2Error(f"{corpus}: unknown option(s) {', '.join(unknown)} (expected {', '.join(known) or 'none'})")
    collected: Collected = module.collect(Path(corpus_dir).resolve() if corpus_dir else None, out_dir,
                                          jobs=jobs, seed=seed, **options)
    language = collected.language
    skipped = list(collected.skipped)
    splits = {name: _validate(items, language, jobs, skipped, quiet, name)
              for name, items in collected.splits.items()}
    splits = _drop_duplicate_ids(splits, skipped)
    _require_training_data(splits, skipped, corpus_dir or corpus)

    train_texts = [r["text"] for r in splits["train"]]
    if units == "bpe":
        tokenizer = BpeTokenizer.train(train_texts, vocab_size or 256, language)
    elif units == "char":
        tokenizer = CharTokenizer.from_texts(train_texts, language)
    else:
        raise DS2Error(f"unknown units {units!r} (expected 'char' or 'bpe')")
    splits = {name: _drop_unknown_units(rows, tokenizer, skipped) for name, rows in splits.items()}
    _require_training_data(splits, skipped, corpus_dir or corpus)
    train_texts = [r["text"] for r in splits["train"]]

    from ds2cli.features import FeatureConfig, stats_from_manifest

    stats = stats_from_manifest(splits["train"], feature_config or FeatureConfig(), stats_utterances, seed)
    split_info = {}
    for name, rows in splits.items():
        path = out_dir / "manifests" / f"{name}.jsonl"
        write_manifest(path, rows)
        split_info[name] = {"utterances": len(rows), "hours": sum(r["duration"] for r in rows) / 3600,
                            "manifest": str(path)}
    write_json(out_dir / "tokenizer.json", tokenizer.to_dict())
    write_json(out_dir / "feature_stats.json", stats.to_dict())
    write_text(out_dir / "lm_text.txt", "".join(t + "\n" for t in train_texts))
    report = PrepareReport(
        corpus=corpus, out_dir=str(out_dir), splits=split_info, skipped=_counts(skipped),
        skipped_items=[asdict(s) for s in skipped], tokenizer=str(out_dir / "tokenizer.json"),
        vocab_size=len(tokenizer), feature_stats=str(out_dir / "feature_stats.json"),
        lm_text=str(out_dir / "lm_text.txt"), seconds=round(time.time() - start, 2))
    write_json(out_dir / "prepare_report.json", asdict(report))
    write_text(out_dir / DONE_MARKER, "")  # last: marks a complete preparation
    return report


def _require_training_data(splits: dict, skipped: list[Skip], where) -> None:
    if not splits.get("train"):
        raise DS2Error(f"{where}: no usable training utterances"
                       + (f" (skipped: {_counts(skipped)})" if skipped else ""))


def _counts(skipped: list[Skip]) -> dict[str, int]:
    return dict(Counter(s.reason for s in skipped).most_common())


def _check_item(args) -> tuple[dict | None, Skip | None]:
    item, language = args
    text = normalize(item.text, language)
    if not text:
        return None, Skip("empty transcript", item.audio_filepath, f"{item.audio_filepath}: empty transcript")
    try:
        info = audio_info(item.audio_filepath)
    except AudioError as err:
        reason = str(err).split(": ", 1)[1].split(" (")[0]
        return None, Skip(reason, item.audio_filepath, str(err))
    if item.offset is not None:
        duration = item.duration if item.duration >= 0 else info.duration - item.offset
        if duration <= 0 or item.offset + duration > info.duration + 1e-3:
            return None, Skip("segment beyond end of audio", item.audio_filepath,
                              f"{item.audio_filepath}: segment {item.offset}+{duration}s beyond {info.duration:.2f}s")
    else:
        duration = info.duration
    row = {"audio_filepath": item.audio_filepath, "duration": round(duration, 4), "text": text, "id": item.id}
    if item.speaker is not None:
        row["speaker"] = item.speaker
    if item.gender is not None:
        row["gender"] = item.gender
    if item.offset is not None:
        row["offset"] = item.offset
    return row, None


def _validate(items: list[Item], language: str, jobs: int, skipped: list[Skip], quiet: bool,
              split: str) -> list[dict]:
    """Read every item's header (in `jobs` processes) and normalise its text; bad items go to
    `skipped`. Order is kept."""
    from ds2cli.progress import progress

    args = [(item, language) for item in items]
    chunk = max(1, min(256, len(args) // (4 * max(jobs, 1)) or 1))
    bar = progress(total=len(args), desc=f"checking {split}", quiet=quiet, unit="file")
    rows = []
    if jobs > 1 and len(args) > 64:
        with multiprocessing.get_context("spawn").Pool(jobs, initializer=_one_thread) as pool:
            results = pool.imap(_check_item, args, chunksize=chunk)
            rows = _collect(results, skipped, bar)
    else:
        rows = _collect(map(_check_item, args), skipped, bar)
    bar.close()
    return rows


def _one_thread() -> None:
    """Worker processes share the cores: more threads each would only oversubscribe them."""
    import os

    os.environ["OMP_NUM_THREADS"] = "1"


def _collect(results, skipped, bar) -> list[dict]:
    rows = []
    for row, skip in results:
        bar.update(1)
        if skip:
            skipped.append(skip)
        else:
            rows.append(row)
    return rows


def _drop_duplicate_ids(splits: dict[str, list[dict]], skipped: list[Skip]) -> dict[str, list[dict]]:
    seen: dict[str, str] = {}
    out = {}
    for name, rows in splits.items():
        kept = []
        for row in rows:
            if row["id"] in seen:
                skipped.append(Skip("duplicate id", row["audio_filepath"],
                                    f"{row['audio_filepath']}: duplicate id {row['id']!r} (first: {seen[row['id']]})"))
                continue
            seen[row["id"]] = row["audio_filepath"]
            kept.append(row)
        out[name] = kept
    return out


def _drop_unknown_units(rows: list[dict], tokenizer, skipped: list[Skip]) -> list[dict]:
    kept = []
    for row in rows:
        unknown = tokenizer.unknown(row["text"])
        if unknown:
            skipped.append(Skip("characters outside the alphabet", row["audio_filepath"],
                                f"{row['audio_filepath']}: characters outside the alphabet: {''.join(unknown)!r}"))
        else:
            kept.append(row)
    return kept


def read_transcript(path: Path) -> tuple[str | None, Skip | None]:
    """Read a sidecar transcript; a missing or non-UTF-8 file becomes a Skip."""
    try:
        return path.read_text(encoding="utf-8").strip(), None
    except FileNotFoundError:
        return None, Skip("missing transcript", str(path), f"{path}: missing transcript")
    except UnicodeDecodeError:
        return None, Skip("transcript not UTF-8", str(path), f"{path}: transcript is not UTF-8 text")


def read_id_text_lines(path: Path, skipped: list[Skip]) -> dict[str, str]:
    """Read `<id> <text>` lines (LibriSpeech and AISHELL transcript files). A line that is not UTF-8
    or repeats an id becomes a Skip; the first line of an id is kept."""
    texts: dict[str, str] = {}
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            skipped.append(Skip("transcript not UTF-8", str(path), f"{path}:{n}: line is not UTF-8 text"))
            continue
        if line:
            utt, _, text = line.partition(" ")
            if utt in texts:
                skipped.append(Skip("duplicate id", str(path), f"{path}:{n}: duplicate id {utt!r} (first kept)"))
            else:
                texts[utt] = text
    return texts
