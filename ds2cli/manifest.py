"""JSON-lines manifests with the keys NeMo and PaddleSpeech use:
`{"audio_filepath", "duration", "text"}` plus optional `offset`, `speaker`, `id`.
Relative audio paths resolve against the manifest's folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ds2cli.errors import ManifestError
from ds2cli.fileio import write_jsonl

REQUIRED = ("audio_filepath", "duration", "text")


def read_manifest(path, require_text: bool = True) -> list[dict]:
    """Read and validate a manifest. Every row gets an `id` (the file stem if absent) and an
    absolute `audio_filepath`. Raises ManifestError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    rows, seen = [], {}
    required = REQUIRED if require_text else REQUIRED[:2]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{n}: expected a JSON object")
        missing = [k for k in required if k not in row]
        if missing:
            raise ManifestError(f"{path}:{n}: missing key(s) {', '.join(missing)}")
        audio = Path(os.path.expanduser(row["audio_filepath"]))
        row["audio_filepath"] = str(audio if audio.is_absolute() else (path.parent / audio).resolve())
        row.setdefault("id", _default_id(row))
        if row["id"] in seen:
            raise ManifestError(f"{path}:{n}: duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        seen[row["id"]] = n
        rows.append(row)
    return rows


def _default_id(row: dict) -> str:
    stem = Path(row["audio_filepath"]).stem
    return f"{stem}@{row['offset']}" if row.get("offset") else stem


def write_manifest(path, rows) -> int:
    """Write rows atomically; returns the number written."""
    return write_jsonl(path, rows)


def read_row_audio(row: dict, sample_rate: int):
    """A row's audio as float32 mono at `sample_rate`: the segment [offset, offset + duration)
    when the row has an offset, else the whole file (its duration is then only informative)."""
    from ds2cli.audio import read_audio

    offset = float(row.get("offset") or 0.0)
    return read_audio(row["audio_filepath"], sample_rate, offset, row["duration"] if offset else None)


def total_duration(rows) -> float:
    return float(sum(r["duration"] for r in rows))
