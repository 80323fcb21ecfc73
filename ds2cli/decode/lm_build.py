"""Building n-gram LMs with KenLM's own tools: lmplz (ARPA) and build_binary (binary).

`build_lm(corpus, out_dir)` normalises the text with the transcript rules (ds2cli.text.normalize),
optionally restricts the vocabulary to the K most frequent words, splits Mandarin (or any
character-level LM) into space-separated characters, and writes into out_dir:
lm.arpa, lm.bin, lm.vocab (the words, for the decoder's spelling trie) and lm.json (how it was
built; a rebuild with the same inputs is skipped)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from ds2cli.decode.config import LMConfig
from ds2cli.decode.lm import CHAR_SPACE, arpa_unigrams, read_meta
from ds2cli.errors import DS2Error, OutputError
from ds2cli.fileio import atomic_path, output_error, read_text_lines, write_json, write_text
from ds2cli.lock import locks_folder
from ds2cli.metrics import detect_language
from ds2cli.text import normalize

BUILD_VERSION = 1


@dataclass
class LMBuild:
    binary: str
    arpa: str
    vocab: str
    level: str
    language: str
    order: int
    lines: int
    words: int  # vocabulary size (LM units)
    tokens: int  # running units in the corpus
    skipped: bool = False  # True when an identical build already existed

    def summary(self) -> str:
        what = "already up to date" if self.skipped else "built"
        return (f"{self.binary}: {self.order}-gram {self.level}-level {self.language} LM {what} "
                f"({self.lines} lines, {self.tokens} {self.level}s, vocabulary {self.words})")


def find_tool(name: str) -> str:
    """lmplz/build_binary next to the running Python (the venv that `make setup` filled), else PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(name)
    if found:
        return found
    raise DS2Error(f"{name}: KenLM tool not found next to {sys.executable} or on PATH; "
                   f"run `make setup` (it builds lmplz and build_binary into the venv)")


def read_corpus(path, language: str | None, level: str) -> tuple[list[str], str, str]:
    """Normalised LM lines (units separated by spaces), the language and the level ('auto':
    characters for Mandarin, words otherwise)."""
    path = Path(path)
    raw = read_text_lines(path, "corpus file")
    language = language or detect_language(raw[:10000])
    lines = [normalize(line, language) for line in raw]
    lines = [line for line in lines if line]
    if not lines:
        raise DS2Error(f"{path}: corpus has no text after normalisation")
    if level == "auto":
        level = "char" if language == "zh" else "word"
    if level == "char":
        lines = [" ".join(CHAR_SPACE if c == " " else c for c in line) for line in lines]
    return lines, language, level


def _disk_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024  # (next to) nothing left: a write has failed


def _memory(setting: str, corpus_bytes: int) -> str:
    """lmplz -S. 'auto': 64 MiB plus 40x the corpus, at most 20% of RAM (lmplz allocates what it
    is given, so a fixed 20% would grab gigabytes for a tiny corpus)."""
    if setting != "auto":
        return setting
    mb = 64 + 40 * corpus_bytes // 2**20
    try:
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        if mb > total_mb // 5:
            return "20%"
    except (ValueError, OSError):
        pass
    return f"{mb}M"


def _run(cmd: list[str], what: str, out: Path | None = None) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        if out is not None and _disk_full(out.parent):  # KenLM's own message does not say so
            raise OutputError(f"{out}: cannot write: no space left on device")
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if "ERROR" in ln or "rror" in ln),
                      lines[-1] if lines else f"exit code {proc.returncode}")
        raise DS2Error(f"{what}: {Path(cmd[0]).name} failed: {reason[:200]}")


@locks_folder("lm build")
def build_lm(corpus, out_dir, config: LMConfig = LMConfig(), *, language: str | None = None,
             force: bool = False) -> LMBuild:
    """Build `out_dir`/lm.{arpa,bin,vocab,json} from a text corpus (one sentence per line).
    One build at a time per `out_dir` (ds2cli.lock)."""
    out = Path(out_dir)
    lmplz, build_binary = find_tool("lmplz"), find_tool("build_binary")
    lines, language, level = read_corpus(corpus, language, config.level)
    counts = Counter(w for line in lines for w in line.split())
    keep = sorted(counts, key=lambda w: (-counts[w], w))[: config.top_k] if config.top_k else None
    text = "".join(line + "\n" for line in lines)
    recipe = {"version": BUILD_VERSION, "order": config.order, "prune": list(config.prune),
              "level": level, "language": language, "top_k": config.top_k,
              "corpus_sha1": hashlib.sha1(text.encode("utf-8")).hexdigest()}
    binary, arpa, vocab_file = out / "lm.bin", out / "lm.arpa", out / "lm.vocab"
    old = read_meta(binary)
    if not force and binary.is_file() and vocab_file.is_file() and old.get("build") == recipe:
        return LMBuild(**{k: old[k] for k in ("binary", "arpa", "vocab", "level", "language", "order",
                                              "lines", "words", "tokens")}, skipped=True)
    if config.prune and len(config.prune) > config.order:
        raise DS2Error(f"lm.prune: {len(config.prune)} thresholds for a {config.order}-gram model")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(out, err) from None
    text_file = out / "lm_corpus.txt"
    write_text(text_file, text)
    cmd = [lmplz, "-o", str(config.order), "-S", _memory(config.memory, len(text.encode("utf-8"))),
           "-T", str(out), "--discount_fallback", "--text", str(text_file)]
    if config.prune:
        cmd += ["--prune", *map(str, config.prune)]
    if keep is not None:
        limit = out / "lm_limit_vocab.txt"
        write_text(limit, "\n".join(keep) + "\n")
        cmd += ["--limit_vocab_file", str(limit)]
    with atomic_path(arpa) as tmp:
        _run(cmd + ["--arpa", str(tmp)], str(corpus), arpa)
    with atomic_path(binary) as tmp:
        _run([build_binary, "-s", str(arpa), str(tmp)], str(arpa), binary)
    words = arpa_unigrams(arpa)
    write_text(vocab_file, "".join(w + "\n" for w in words))
    result = LMBuild(str(binary), str(arpa), str(vocab_file), level, language, config.order,
                     len(lines), len(words), sum(counts.values()))
    write_json(binary.with_suffix(".json"), {**asdict(result), "build": recipe, "prune": list(config.prune),
                                             "top_k": config.top_k})
    text_file.unlink(missing_ok=True)
    return result


def recipe_lm(exp_dir, config: LMConfig, language: str | None = None, force: bool = False) -> LMBuild:
    """A recipe's LM: built from exp_dir/lm_text.txt (training transcripts only, never test
    text) into exp_dir/lm/, or reused if already built from the same text and settings."""
    exp_dir = Path(exp_dir)
    text = exp_dir / "lm_text.txt"
    if not text.is_file():
        raise DS2Error(f"{text}: no LM training text; prepare the recipe first (ds2cli prepare --recipe ...)")
    return build_lm(text, exp_dir / "lm", config, language=language, force=force)


def describe(path) -> dict:
    """lm.json of a built model, for `_meta` blocks."""
    meta = read_meta(path)
    return {k: meta[k] for k in ("level", "language", "order", "words", "prune", "top_k") if k in meta}

