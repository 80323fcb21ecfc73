"""One run at a time per experiment folder: an exclusive flock(2) on FOLDER/.lock.

The operating system drops the lock when the holder dies, so a run killed with kill -9 never
blocks the next one; the lock file stays (removing it would let two runs lock two different
files). It holds the holder's pid and command, for the message the second run prints."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import os
from pathlib import Path
from typing import Callable, Iterator

from ds2cli.errors import DS2Error
from ds2cli.fileio import output_error, remove_stale_temps

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # folder -> depth: a command that calls another (train -> prepare) locks once


class FolderBusy(DS2Error):
    """Another run holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(folder, command: str) -> Iterator[Path]:
    """Hold the folder's lock for the block, or raise FolderBusy at once. On taking it, remove the
    temporary files a killed run left there (no other run can be writing them)."""
    folder = Path(folder)
    key = folder.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield folder
        finally:
            _held[key] -= 1
        return
    if folder.is_dir() and not os.access(folder, os.W_OK):
        # no run can write here, so none can clash; a read-only use (an LM already built, a
        # folder already prepared) goes on, and a write fails with its own line
        yield folder
        return
    path = folder / LOCK_NAME
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as err:
        raise output_error(path, err) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise output_error(path, err) from None
            raise FolderBusy(f"{folder}: another ds2cli run ({_holder(path)}) is using this folder; "
                             "wait for it to finish or use another folder") from None
        with contextlib.suppress(OSError):  # the pid is for the message only
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {command}\n".encode())
        remove_stale_temps(folder)
        _held[key] = 1
        try:
            yield folder
        finally:
            del _held[key]
            if created:  # a run that failed before writing anything leaves no empty folder
                with contextlib.suppress(OSError):
                    if [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                        path.unlink()
                        folder.rmdir()
    finally:
        os.close(fd)  # releases the lock


def locks_folder(command: str, param: str = "out_dir") -> Callable:
    """Decorator: the function runs holding folder_lock on its `param` argument."""
    def wrap(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def locked(*args, **kwargs):
            with folder_lock(signature.bind(*args, **kwargs).arguments[param], command):
                return func(*args, **kwargs)
        return locked
    return wrap


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid, _, command = path.read_text().strip().partition(" ")
        if pid:
            return f"pid {int(pid)}, ds2cli {command}" if command else f"pid {int(pid)}"
    return "pid unknown"
