"""What every benchmark prints about where it ran: the command, the commit and the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path


def command_line() -> str:
    """The command that produced this output, with the interpreter relative to the cwd when inside it."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    return shlex.join([str(python), *sys.argv])


def git_state() -> str:
    """The commit of the checkout the benchmarks live in, and whether src/ has changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(not a git checkout)"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def machine() -> str:
    """CPU count and model, and the operating system, so figures can be compared."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}"
