"""Offline augmentation: write augmented copies of a manifest's audio and a manifest describing them.

Copy k of an utterance is exactly what the on-the-fly pipeline gives at epoch k with the same seed
(the same code runs), so `--copies N` materialises N epochs of training noise."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ds2cli.audio import read_audio, write_audio
from ds2cli.augment.pipeline import Pipeline
from ds2cli.errors import AudioError, DS2Error
from ds2cli.fileio import write_json
from ds2cli.lock import locks_folder
from ds2cli.manifest import read_manifest, write_manifest
from ds2cli.progress import progress

HEADROOM = 0.99  # peak after a mix that would clip the 16-bit output (both parts scaled: SNR kept)
MAX_REPORTED = 20  # skipped rows listed by name in the report; all are counted


@dataclass
class AugmentReport:
    manifest: str  # the manifest written
    rows: int = 0  # rows in the input manifest
    written: int = 0  # audio files written
    audio_seconds: float = 0.0  # total duration written
    skipped: int = 0  # input rows that could not be read
    skipped_examples: list[dict] = field(default_factory=list)  # {"id", "error"}, the first few
    applied: dict[str, int] = field(default_factory=dict)  # augmentation type -> copies it touched
    notes: list[str] = field(default_factory=list)
    already_done: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.already_done:
            return f"already done: {self.written} files in {self.manifest} (use --force to redo)"
        applied = ", ".join(f"{k} {v}" for k, v in self.applied.items()) or "nothing"
        line = (f"wrote {self.written} files ({_hms(self.audio_seconds)}) and {self.manifest}; "
                f"applied: {applied}; skipped {self.skipped} unreadable row(s) of {self.rows}")
        if self.skipped_examples:
            first = self.skipped_examples[0]
            line += f" (first: {first['error']})"
        return line


def _hms(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


@locks_folder("augment")
def augment_manifest(manifest, out_dir, pipeline: Pipeline, copies: int = 1, seed: int = 0,
                     quiet: bool = True, force: bool = False) -> AugmentReport:
    """Write `copies` augmented versions of every readable row to out_dir/audio/*.wav and
    out_dir/manifest.jsonl; unreadable rows are skipped and counted. Re-running with the same
    settings is a no-op unless `force`. One run at a time per `out_dir` (ds2cli.lock); taking the
    lock removes the temporary files of a killed run."""
    if copies < 1:
        raise DS2Error(f"--copies must be at least 1, got {copies}")
    out_dir = Path(out_dir)
    rows = read_manifest(manifest, require_text=False)  # a bad manifest fails here, before any work
    settings = {"manifest": str(Path(manifest).resolve()), "copies": copies, "seed": seed,
                "sample_rate": pipeline.sample_rate, "noise": pipeline.noise_source,
                "augment": pipeline.config.to_list()}
    out_manifest, marker = out_dir / "manifest.jsonl", out_dir / "augment.json"
    previous = _previous_run(out_manifest, marker)
    if previous is not None and not force:
        if previous.get("settings") != settings:
            raise DS2Error(f"{out_dir}: already holds a different augmentation; pass --force to replace it")
        return AugmentReport(**{**previous["report"], "already_done": True})
    if previous is not None:
        _remove_outputs(out_manifest, out_dir / "audio")

    report = AugmentReport(manifest=str(out_manifest), rows=len(rows))
    if pipeline.feature_steps:
        report.notes.append("feature augmentations (specaugment) apply in training only; not written")
    out_rows, names = [], set()
    bar = progress(total=len(rows) * copies, desc="augment", quiet=quiet, unit="file")
    for row in rows:
        try:
            wave = read_audio(row["audio_filepath"], pipeline.sample_rate,
                              offset=float(row.get("offset") or 0.0),
                              duration=float(row["duration"]) if row.get("offset") else None)
        except AudioError as err:
            report.skipped += 1
            if len(report.skipped_examples) < MAX_REPORTED:
                report.skipped_examples.append({"id": row["id"], "error": str(err)})
            bar.update(copies)
            continue
        for k in range(copies):
            out_rows.append(_write_copy(row, wave, k, seed, pipeline, out_dir, names, report))
            bar.update(1)
    bar.close()
    if out_rows:
        write_manifest(out_manifest, out_rows)
        write_json(marker, {"settings": settings, "report": report.to_dict()})  # written last: marks done
    return report


def _write_copy(row: dict, wave: np.ndarray, k: int, seed: int, pipeline: Pipeline, out_dir: Path,
                names: set, report: AugmentReport) -> dict:
    out, applied = pipeline.apply_waveform(wave, seed=seed, epoch=k, utt_id=row["id"])
    peak = float(np.max(np.abs(out)))
    if peak > 1.0:
        out = out * np.float32(HEADROOM / peak)
        applied.append({"type": "headroom", "scale": round(HEADROOM / peak, 6)})
    name = _file_name(row["id"], k, names)
    write_audio(out_dir / "audio" / name, out, pipeline.sample_rate)
    duration = len(out) / pipeline.sample_rate
    report.written += 1
    report.audio_seconds += duration
    for record in applied:
        if "skipped" not in record:
            report.applied[record["type"]] = report.applied.get(record["type"], 0) + 1
    extra = {key: v for key, v in row.items() if key not in ("audio_filepath", "duration", "id", "offset")}
    source = {"id": row["id"], "audio_filepath": row["audio_filepath"]}
    if row.get("offset"):
        source["offset"] = row["offset"]
    return {"audio_filepath": f"audio/{name}", "duration": round(duration, 6), **extra,
            "id": f"{row['id']}-aug{k}", "source": source, "copy": k, "seed": seed, "augment": applied}


def _file_name(utt_id: str, k: int, taken: set) -> str:
    """A file-system-safe, unique name from the utterance id."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", utt_id)[:100] or "utt"
    name = f"{stem}-aug{k}.wav"
    if name in taken:  # two ids that sanitise alike: tell them apart by a hash of the real id
        name = f"{stem}-{hashlib.blake2b(utt_id.encode(), digest_size=4).hexdigest()}-aug{k}.wav"
    taken.add(name)
    return name


def _previous_run(out_manifest: Path, marker: Path) -> dict | None:
    if not (out_manifest.is_file() and marker.is_file()):
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # unreadable marker: treat as a different run (needs --force)


def _remove_outputs(out_manifest: Path, audio_dir: Path) -> None:
    """Delete the audio files a previous run listed (and only those), then its manifest."""
    for line in out_manifest.read_text(encoding="utf-8").splitlines():
        try:
            path = (out_manifest.parent / json.loads(line)["audio_filepath"]).resolve()
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if path.parent == audio_dir.resolve() and path.is_file():
            path.unlink()
    out_manifest.unlink()
