"""A function's or class's source text, found without `tokenize`.

`inspect.getsource` finds where a function ends by running the pure-Python tokenizer
over it, and the tokenizer's first use in a process compiles its regular expressions:
~8 ms, half of a fully cached run's wall time (code hashing needs every task's source
once per process). This module finds the same lines from what the compiler already
knows: the last line any instruction of the function (or of code nested in it) comes
from, extended over the lines after it that still belong to the block (blank, comment,
or indented deeper than the ``def``: a trailing ``pass`` or string has no instruction).

It gives a tree only where the text is safe to use as the function's source: the
first line is the decorator or ``def`` the code object names, the text parses, and it
holds one function of the code object's name. Anything else (a lambda, a function
renamed after its ``def``, a file changed since it was imported) is left to
`inspect.getsource`, whose answer this one equals wherever it gives one (the tests
compare both over every function of lazyflow; once, over every installed dependency's
48,149 too).

A class has no code object to ask: inspect walks its module's syntax tree for it (a
parse of the whole file per call) and then tokenizes from its first line. Here the
module is parsed once per version of its file, every class's span taken from the tree
(first decorator to ``end_lineno``), and only the class's own lines parsed again
(compared the same way: 8,150 classes, all identical): ~0.26 ms a class instead of
~3 ms, which counts because a class's hash is computed again in every run.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import re
import sys
import textwrap
import types
from typing import Any

_HEADER = re.compile(r"\s*(@|def\s|async\s+def\s)")
_DEF = re.compile(r"\s*(async\s+)?def\s")


def _last_line(code: types.CodeType) -> int:
    """The last source line of any instruction of `code` or of code nested in it."""
    last = code.co_firstlineno
    for _start, end, _col, _end_col in code.co_positions():
        if end is not None and end > last:
            last = end
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            last = max(last, _last_line(const))
    return last


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: list[str], first: int, last: int) -> int:
    """The end (exclusive, 0-based) of the block starting at line index `first`, whose
    last instruction is on line index `last`: the lines after it that are blank,
    comments or indented deeper than the block's first line belong to it (trailing
    blank and comment lines are left out: they do not change what it parses to)."""
    base = _indent(lines[first])
    # The def line, after any decorators: a body of a docstring alone has its last
    # instruction there (or on the first decorator), and its block starts after it.
    header = first
    while header < len(lines) - 1 and not (
        _DEF.match(lines[header]) and _indent(lines[header]) == base
    ):
        header += 1
    end = max(last, header) + 1
    code_end = end
    for line in lines[end:]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            if _indent(line) <= base:
                break
            code_end = end + 1
        end += 1
    return code_end


def _function_tree(func: types.FunctionType) -> ast.Module | None:
    """The parsed source of `func` as `inspect.getsource` would give it, or None where
    this cannot tell it safely (then `inspect.getsource` is asked)."""
    code = func.__code__
    if func.__name__ == "<lambda>":
        return None
    filename = code.co_filename
    linecache.checkcache(filename)  # an edited file is read again, as inspect does
    lines = linecache.getlines(filename, func.__globals__)
    first = code.co_firstlineno - 1
    if not lines or not 0 <= first < len(lines) or not _HEADER.match(lines[first]):
        return None
    last = min(_last_line(code), len(lines)) - 1
    text = "".join(lines[first : _block_end(lines, first, last)])
    return _one_definition(text, (ast.FunctionDef, ast.AsyncFunctionDef), func.__name__)


def _one_definition(text: str, kinds: tuple[type, ...], name: str) -> ast.Module | None:
    """`text` parsed (dedented), if it is exactly one definition of one of `kinds` named
    `name`: what says the lines found are the object's whole source and nothing more."""
    try:
        tree = ast.parse(textwrap.dedent(text))
    except (SyntaxError, ValueError):
        return None
    if len(tree.body) != 1:
        return None
    node = tree.body[0]
    if not isinstance(node, kinds) or getattr(node, "name", None) != name:
        return None
    return tree


_class_spans: dict[str, tuple[list[str], dict[str, tuple[int, int]]]] = {}
"""Per file: the lines they were found in (`linecache`'s list, replaced when the file
changes) and each class's (first line index, end) by qualified name."""


class _ClassSpans:
    """Every class of a module by qualified name, the first of a name kept (the one
    `inspect`'s walk finds first), from its first decorator to its last line. Only
    statements are walked (a class is defined by one), not the expressions inspect's
    visitor descends into as well: the same classes in the same order, fewer nodes."""

    def __init__(self, tree: ast.Module) -> None:
        self.stack: list[str] = []
        self.spans: dict[str, tuple[int, int]] = {}
        self._walk(tree)

    def _walk(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                self.stack.append(child.name)
                first = child.decorator_list[0].lineno if child.decorator_list else child.lineno
                span = (first - 1, child.end_lineno or first)
                self.spans.setdefault(".".join(self.stack), span)
                self._walk(child)
                self.stack.pop()
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                self.stack += [child.name, "<locals>"]
                self._walk(child)
                del self.stack[-2:]
            elif isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                self._walk(child)


def _class_lines(cls: type) -> tuple[str, list[str]] | None:
    """The file of `cls`'s module and its current lines (`linecache`'s list: a new list
    once the file changed); None without a source file."""
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    if module is None or not isinstance(filename, str) or not filename.endswith(".py"):
        return None
    linecache.checkcache(filename)
    lines = linecache.getlines(filename, module.__dict__)
    return (filename, lines) if lines else None


def class_file_version(cls: type) -> object | None:
    """A token that is the same object for as long as the file holding `cls` is
    unchanged (what `_class_tree` reads), or None: a class's parsed source can be kept
    while its token is."""
    found = _class_lines(cls)
    return None if found is None else found[1]


def _class_tree(cls: type) -> ast.Module | None:
    """The parsed source of class `cls` as `inspect.getsource` would give it (found
    the way inspect finds it, by walking its module's syntax tree; its end from the
    tree too, not the tokenizer), or None where this cannot tell."""
    found = _class_lines(cls)
    if found is None:
        return None
    filename, lines = found
    known = _class_spans.get(filename)
    if known is None or known[0] is not lines:
        try:
            module_tree = ast.parse("".join(lines))
        except (SyntaxError, ValueError):
            return None
        known = _class_spans[filename] = (lines, _ClassSpans(module_tree).spans)
    span = known[1].get(cls.__qualname__)
    if span is None:
        return None
    return _one_definition("".join(lines[span[0] : span[1]]), (ast.ClassDef,), cls.__name__)


def parsed_source(obj: Any) -> ast.Module | None:
    """The parsed (dedented) source of a function or class, None when it has none."""
    if hasattr(obj, "__wrapped__"):  # inspect reads the source of what it wraps
        try:
            obj = inspect.unwrap(obj)
        except ValueError:  # a cycle of __wrapped__
            return None
    tree = None
    if isinstance(obj, types.FunctionType):
        tree = _function_tree(obj)
    elif isinstance(obj, type):
        tree = _class_tree(obj)
    if tree is not None:
        return tree
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, SyntaxError, IndentationError, ValueError):
        return None
