"""Mutation score per module from the last ``mutmut run`` (``make mutation`` calls this).

mutmut prints one line per mutant (``module.x_function__mutmut_7: killed``); this sums
them per module: killed (a test failed, or the mutant timed out), survived (every test
passed), no tests (no selected test reaches the mutated function). The score is killed
over the mutants checked; "of covered" leaves out the mutants no selected test reaches. The
functions with the most survivors come last: where the tests assert too little.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

MUTMUT = Path(sys.executable).with_name("mutmut")
KILLED = ("killed", "timeout")


def parse(lines: list[str]) -> list[tuple[str, str, str]]:
    """``(module, function, status)`` of each mutant line."""
    out = []
    for line in lines:
        name, sep, status = line.strip().rpartition(": ")
        if not sep:
            continue
        module, _, rest = name.partition(".x")  # x_function or xǁClassǁmethod
        function = re.sub(r"__mutmut_\d+$", "", rest)[1:].replace("ǁ", ".")
        out.append((module, function, status))
    return out


def main() -> int:
    done = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"], capture_output=True, text=True, check=True
    )
    mutants = parse(done.stdout.splitlines())
    per_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: Counter[str] = Counter()
    for module, function, status in mutants:
        per_module[module][status] += 1
        if status == "survived":
            survivors[f"{module}.{function}"] += 1
    print("| module | mutants | killed | survived | no tests | not checked | score | of covered |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    total: Counter[str] = Counter()
    for module, counts in sorted(per_module.items()):
        total.update(counts)
        print(_row(module, counts))
    print(_row("all four", total))
    print("\nmost survivors:")
    for function, n in survivors.most_common(12):
        print(f"  {n:4d}  {function}")
    return 0


def _row(name: str, counts: Counter[str]) -> str:
    n = sum(counts.values())
    killed = sum(counts[k] for k in KILLED)
    unchecked = counts["not checked"]  # the run was stopped before reaching them
    n -= unchecked
    covered = n - counts["no tests"]
    return (
        f"| {name} | {n + unchecked} | {killed} | {counts['survived']} | {counts['no tests']} | "
        f"{unchecked} | {killed / max(n, 1):.0%} | {killed / max(covered, 1):.0%} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
