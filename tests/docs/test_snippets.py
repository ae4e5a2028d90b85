"""Every runnable code block of docs/*.md and README.md runs as written.

The convention (COMMON.md, "Docs snippet convention"):

- ```` ```python ```` blocks run in order, per Markdown file, in one namespace, in a fresh
  temporary directory; ```` ```python fragment ```` blocks are shown, not run;
- ```` ```console ```` blocks: each line starting with ``$ `` is run by the shell in the
  same directory, with the repository's .venv/bin first on PATH; the lines after it, up
  to the next ``$ `` line, are its expected output, compared loosely (see `matches`);
- ``sh``, ``bash``, ``toml``, ``text``, ``json``, ``ini``, ``mermaid`` and unlabelled blocks
  are not run.

Python blocks run in this process (cheap: no interpreter start per block). Each block
is written to a file in the temporary directory and compiled from it, so ``inspect``
finds the source of the tasks it defines (code hashing needs it); the namespace is a
module object that, like a script's ``__main__``, other processes cannot import, so
process and remote executors receive its tasks by value.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
RUN = {"python", "console"}
SKIP = {
    "python fragment",
    "sh",
    "bash",
    "toml",
    "text",
    "json",
    "ini",
    "yaml",
    "dot",
    "dockerfile",
    "mermaid",
}
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`]*)$")


@dataclass
class Block:
    info: str
    line: int  # 1-based line of the opening fence
    text: str


def blocks(path: Path) -> Iterator[Block]:
    """The fenced blocks of a Markdown file (indented ones too, as in list items)."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, info, start = len(m["indent"]), m["info"].strip(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        yield Block(info, start + 1, "\n".join(body) + "\n")
        i += 1


def test_every_block_is_runnable_or_marked() -> None:
    """A block's info string says what it is: runnable, a fragment, or not code to run."""
    unknown = [
        f"{p.relative_to(ROOT)}:{b.line}: {b.info!r}"
        for p in PAGES
        for b in blocks(p)
        if b.info not in RUN | SKIP
    ]
    assert not unknown, "unknown info strings (use python, python fragment, console, sh...):\n" + (
        "\n".join(unknown)
    )


# -- loose comparison of console output ---------------------------------------------------

_MASKS = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?(\.\d+)?"), "<when>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\b"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?(s|ms|µs)\b|\b\d+m\d{2}s\b"), "<dur>"),
    (re.compile(r"\b[0-9a-f]{7,40}\b"), "<id>"),
    (re.compile(r"\(pid \d+\)"), "(pid <n>)"),
    (re.compile(r"\b\d+(\.\d+)? (B|KB|MB|GB)\b"), "<size>"),
    (re.compile(r"/tmp/\S+"), "<path>"),
    (re.compile(r"^host +\S+"), "host <host>"),
]


def normalize(line: str, tmp: str | None = None) -> str:
    if tmp:
        line = line.replace(tmp, "/tmp/docs-run")
    for pattern, repl in _MASKS:
        line = pattern.sub(repl, line)
    return " ".join(line.split())


def matches(expected: list[str], actual: str, tmp: str) -> str | None:
    """None if every expected line (ids, times, durations, sizes, paths masked; spacing
    ignored) appears in the actual output, in order; a line ``...`` stands for any number
    of lines. Otherwise the first expected line that was not found."""
    got = [normalize(x, tmp) for x in actual.splitlines()]
    at = 0
    for want in expected:
        if want.strip() in ("...", ""):
            continue
        norm = normalize(want)
        while at < len(got) and got[at] != norm:
            at += 1
        if at == len(got):
            return want
        at += 1
    return None


def commands(block: Block) -> Iterator[tuple[str, list[str]]]:
    """``(command, expected output lines)`` of a console block."""
    command: str | None = None
    out: list[str] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            if command is not None:
                yield command, out
            command, out = line[2:], []
        elif command is not None:
            out.append(line)
    if command is not None:
        yield command, out


# -- running a page --------------------------------------------------------------------------


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LAZYFLOW_DB", None)  # as a new user has it: the store is found or made here
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["LAZYFLOW_CEILING_DIRECTORIES"] = str(tmp.parent)
    env.setdefault("COLUMNS", "200")
    return env


def run_console(block: Block, page: Path, tmp: Path) -> None:
    for command, expected in commands(block):
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp,
            env=_env(tmp),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
            text=True,
            timeout=300,
        )
        output = proc.stdout
        missing = matches(expected, output, str(tmp))
        assert missing is None, (
            f"{page.name}:{block.line}: `{command}` printed\n{output}\n"
            f"which lacks the expected line\n{missing}"
        )


def run_python(block: Block, module: types.ModuleType, page: Path, tmp: Path, n: int) -> None:
    source = tmp / f"_{page.stem}_block{n}.py"
    source.write_text(block.text)
    code = compile(block.text, str(source), "exec")
    try:
        exec(code, module.__dict__)
    except BaseException as exc:
        raise AssertionError(
            f"{page.name}:{block.line}: the python block fails: {type(exc).__name__}: {exc}"
        ) from exc


RUNNABLE = [p for p in PAGES if any(b.info in RUN for b in blocks(p))]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: p.name)
def test_page_runs_as_written(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAZYFLOW_DB")
    monkeypatch.syspath_prepend(str(tmp_path))  # files a block writes import as modules
    name = f"docs_{page.stem.replace('-', '_')}"
    module = types.ModuleType(name)
    module.__file__ = str(tmp_path / f"{name}.py")
    # Not in sys.modules, as a script's __main__ is not importable by other processes:
    # tasks go to worker processes by value (cloudpickle).
    try:
        for n, block in enumerate(blocks(page)):
            if block.info == "python":
                run_python(block, module, page, tmp_path, n)
            elif block.info == "console":
                run_console(block, page, tmp_path)
    finally:
        _close_schedulers()


def _close_schedulers() -> None:
    """The default schedulers that `run()` made in this page's directory."""
    from lazyflow_core import scheduler

    for key, sched in list(scheduler._default_schedulers.items()):
        sched.close()
        del scheduler._default_schedulers[key]


def test_matches_is_loose_about_ids_and_times_but_not_content() -> None:
    out = "execution 1a2b3c4d done: 3 jobs in 0.05s\n2646700\n"
    assert matches(["execution ffff0000 done: 3 jobs in 1.20s", "...", "2646700"], out, "") is None
    assert matches(["execution ffff0000 done: 4 jobs in 1.20s"], out, "") is not None
    assert matches(["2646700", "execution 1a2b3c4d done: 3 jobs in 0.05s"], out, "") is not None
