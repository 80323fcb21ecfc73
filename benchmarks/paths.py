"""How benchmark results name files: relative to the repository when inside it, else by the
last few parts of the path, so that no result records the layout of the machine it ran on."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shown(path, keep: int = 3) -> str:
    """`path` relative to the repository, or its last `keep` components when outside it."""
    p = Path(path)
    full = p.resolve() if p.is_absolute() or p.exists() else (Path.cwd() / p).resolve()
    try:
        return full.relative_to(REPO).as_posix()
    except ValueError:
        return Path(*full.parts[-keep:]).as_posix() if len(full.parts) > keep else full.as_posix().lstrip("/")


def recorded_commit(path, result: dict) -> str:
    """The commit a result was recorded in: its `recorded_in_commit`, else the last commit of the file."""
    if result.get("recorded_in_commit"):
        return result["recorded_in_commit"]
    import subprocess

    done = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(path)], cwd=REPO,
                          capture_output=True, text=True)
    return done.stdout.strip() or "uncommitted"


def recorded_date(path, result: dict) -> str:
    """The date a result gives, else the day it was recorded in the repository."""
    if result.get("date"):
        return result["date"]
    if result.get("recorded_on"):
        return f"{result['recorded_on']} (recorded)"
    import subprocess

    done = subprocess.run(["git", "show", "-s", "--format=%cs", recorded_commit(path, result)], cwd=REPO,
                          capture_output=True, text=True)
    return f"{done.stdout.strip()} (recorded)" if done.returncode == 0 and done.stdout.strip() else "not recorded"


def stamped(result: dict) -> dict:
    """`result` with the commit the benchmark ran at and the date: what every result file records."""
    import subprocess
    import time

    done = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True, text=True)
    commit = done.stdout.strip() if done.returncode == 0 else "not a git checkout"
    out = {**result, "recorded_in_commit": commit, "recorded_on": time.strftime("%Y-%m-%d", time.gmtime())}
    if "command" not in out and command_line():
        out["command"] = command_line()
    return out


def command_line() -> str | None:
    """`python -m benchmarks.NAME ARGS` when this process runs a benchmark module, paths shown
    relative to the repository; None otherwise (e.g. a benchmark's main() called from a test)."""
    import shlex
    import sys

    script = Path(sys.argv[0])
    if script.parent.name != "benchmarks" or script.suffix != ".py":
        return None
    args = [shown(a) if a.startswith("/") and Path(a).exists() else a for a in sys.argv[1:]]
    return " ".join(["python", "-m", f"benchmarks.{script.stem}", *map(shlex.quote, args)])
