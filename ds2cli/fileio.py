"""Atomic file writes: a reader never sees half a file, a crash never leaves one, a full disk or
an unwritable folder is one `OutputError` naming the file (the previous file is kept)."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from ds2cli.errors import DS2Error, OutputError

# atomic_path's temporary names: ".NAME.XXXXXXXX.tmp" (mkstemp's 8 random characters)
TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def output_error(path, err: OSError) -> OutputError:
    """One line for an OSError met writing `path`: the file and the system's reason."""
    reason = os.strerror(err.errno).lower() if err.errno else str(err)
    if err.errno == errno.EEXIST:  # mkdir met a file where a folder should be
        reason = f"{err.filename or Path(path).parent} is not a directory"
    return OutputError(f"{path}: cannot write: {reason}")


def _mode_for(path: Path) -> int:
    """The mode a plain open() would give: the old file's, else 0o666 less the umask."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o7777
    return 0o666 & ~_umask()


def _umask() -> int:
    with contextlib.suppress(OSError, ValueError, StopIteration):  # Linux: read without changing it
        with open("/proc/self/status", encoding="ascii") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.
    The file gets the mode a plain write would give (mkstemp's 0600 would hide it from others)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except OSError as err:
        _discard(tmp)
        if _about(err, path):
            raise output_error(path, err) from None
        raise  # about another file (an input read inside the block)
    except BaseException:
        _discard(tmp)
        raise


def _about(err: OSError, path: Path) -> bool:
    """Whether the error is about writing `path`: no file named (a write), the file, a temporary
    file beside it, or one of its folders."""
    if err.filename is None:
        return True
    named = Path(os.fsdecode(err.filename))
    return named == path or named.parent == path.parent or named in path.parents


def _discard(tmp) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def remove_stale_temps(folder: str | os.PathLike, depth: int = 2) -> list[Path]:
    """Delete atomic_path's temporary files that a killed run left in `folder` and its
    subfolders (to `depth` levels). Only call it while holding the folder's lock (ds2cli.lock)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if depth > 0:
                removed += remove_stale_temps(entry.path, depth - 1)
        elif TEMP_NAME.match(entry.name):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def read_text_lines(path: str | os.PathLike, what: str = "file") -> list[str]:
    """The lines of a UTF-8 text file; a missing, folder or non-UTF-8 path is a one-line DS2Error
    that names it as `what` (e.g. "corpus file")."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DS2Error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise DS2Error(f"{path}: is a directory, not a {what}") from None
    except UnicodeDecodeError:
        raise DS2Error(f"{path}: {what} is not UTF-8 text") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows) -> int:
    """Write one JSON object per line; returns the number of rows."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line (a log such as metrics.jsonl); a full disk is an OutputError naming it."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")
    except OSError as err:
        raise output_error(path, err) from None


def torch_save(obj, path: str | os.PathLike) -> None:
    import torch

    # through a Python file object: a full disk is then an OSError with its errno, not torch's
    # "inline_container ... unexpected pos" RuntimeError
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
