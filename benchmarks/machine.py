"""Where and when a benchmark ran: cores, CPU model, memory, date, git commit, versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def _git_commit() -> str:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if proc.returncode != 0:
        return "uncommitted"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    return proc.stdout.strip() + ("+dirty" if dirty.strip() else "")


def describe() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "mem_gib": _mem_gib(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()}",
        "commit": _git_commit(),
        "executable": sys.executable,
    }


def one_line(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['nproc']} cores, {info['cpu']}, {info['mem_gib']} GiB, "
        f"Python {info['python']}, commit {info['commit']}, {info['date']}"
    )
