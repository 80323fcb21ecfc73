"""JSON-lines manifests with the keys NeMo and PaddleSpeech use:
`{"audio_filepath", "duration", "text"}` plus optional `offset`, `speaker`, `id`.
Relative audio paths resolve against the manifest's folder."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ds2cli.errors import ManifestError
from ds2cli.fileio import write_jsonl

REQUIRED = ("audio_filepath", "duration", "text")
MAX_SECONDS = 24 * 3600.0  # a duration or offset beyond a day is a broken row, not a recording


def read_manifest(path, require_text: bool = True, skipped: list[str] | None = None) -> list[dict]:
    """Read and validate a manifest. Every row gets an `id` (the file stem if absent) and an
    absolute `audio_filepath`. Raises ManifestError naming the file and line; with a `skipped`
    list, a row whose fields are wrong is left out and its message appended there instead (the
    file as a whole must still be a manifest)."""
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
        problem = f"missing key(s) {', '.join(missing)}" if missing else row_problem(row, require_text)
        if problem:
            if skipped is None:
                raise ManifestError(f"{path}:{n}: {problem}")
            skipped.append(f"{path}:{n}: {problem}")
            continue
        audio = Path(os.path.expanduser(row["audio_filepath"]))
        row["audio_filepath"] = str(audio if audio.is_absolute() else (path.parent / audio).resolve())
        row.setdefault("id", _default_id(row))
        if row["id"] in seen:
            raise ManifestError(f"{path}:{n}: duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        seen[row["id"]] = n
        rows.append(row)
    return rows


def row_problem(row: dict, require_text: bool = True) -> str | None:
    """What is wrong with a row's field types and values (None when nothing is)."""
    if not isinstance(row["audio_filepath"], str) or not row["audio_filepath"].strip():
        return "audio_filepath must be a non-empty string"
    for key in ("duration", "offset"):
        if key not in row or (key == "offset" and row[key] is None):
            continue
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key} must be a number of seconds, not {value!r}"
        if not math.isfinite(value) or value < 0 or value > MAX_SECONDS:
            return f"{key} must be between 0 and {MAX_SECONDS:g} seconds, not {value!r}"
    if require_text and not isinstance(row.get("text"), str):
        return f"text must be a string, not {row.get('text')!r}"
    if "id" in row and not isinstance(row["id"], (str, int)):
        return f"id must be a string, not {row['id']!r}"
    return None


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
