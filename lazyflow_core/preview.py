"""Previews: the one-line text that stands for a value in the store, logs and the CLI.

A preview should say what the value *is* at a glance, within a few dozen characters:
``DataFrame(2000x4)``, ``ndarray(float64, 1000x3)``, ``bytes(1048576)``, ``File('a.csv')``,
``[0, 1, 4, 9, ...``. The first characters of a repr do not (a DataFrame's repr is a
table; ``<Model object at 0x7f...>`` differs between two runs of the same value, so two
equal calls would not look equal in ``lazyflow diff``).

`short_repr` is called for every argument and result the store records, so it is cheap
for the common cases (numbers, short strings) and never builds the repr of a whole big
container. It imports nothing else of lazyflow (and no NumPy or pandas: shaped values are
recognised by their ``shape`` attribute), so every layer may use it.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_CONTAINERS = (list, tuple, dict, set, frozenset)


def ellipsize(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in "..." when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_repr(value: Any, limit: int = 40) -> str:
    """A one-line preview of `value` in at most `limit` characters."""
    cls = type(value)
    if cls is int or cls is float or cls is bool or value is None:  # most arguments
        return ellipsize(repr(value), limit)
    path = getattr(value, "path", None)
    if isinstance(path, str) and cls.__name__ in ("File", "Dir"):
        # Keep the end of a path: that is the part that tells files apart.
        room = max(8, limit - len(cls.__name__) - 4)
        shown = path if len(path) <= room else "..." + path[-(room - 3) :]
        return f"{cls.__name__}({shown!r})"
    if cls is bytes or cls is bytearray:
        text = repr(value[:limit])
        return (
            text if len(value) <= limit and len(text) <= limit else f"{cls.__name__}({len(value)})"
        )
    shaped = _shaped(value)
    if shaped is not None:
        return ellipsize(shaped, limit)
    return ellipsize(_one_line(_bounded_repr(value, limit)), limit)


def _shaped(value: Any) -> str | None:
    """``Name(dtype, AxB)`` for arrays and tables (anything with a tuple ``shape``)."""
    cls = type(value)
    if cls in _CONTAINERS or cls is str:
        return None
    shape = getattr(value, "shape", None)
    if not isinstance(shape, tuple) or not shape or not all(isinstance(n, int) for n in shape):
        return None  # not shaped, or a 0-d scalar (numpy.float64(1.5)): its repr is fine
    size = 1
    for n in shape:
        size *= n
    dtype = getattr(value, "dtype", None)
    if size <= 8 and len(shape) == 1 and dtype is not None:
        return None  # a handful of numbers: the repr shows them
    dims = "x".join(str(n) for n in shape)
    return f"{cls.__name__}({dtype}, {dims})" if dtype is not None else f"{cls.__name__}({dims})"


def _bounded_repr(value: Any, limit: int) -> str:
    """The repr of `value`, or of its first items when it is a big container."""
    cls = type(value)
    try:
        if cls in _CONTAINERS and len(value) > limit:
            head: Any
            if cls is dict:
                head = dict(itertools.islice(value.items(), limit))
            elif cls is list or cls is tuple:
                head = value[:limit]
            else:
                head = list(itertools.islice(value, limit))
            text = repr(head)
            if cls is set or cls is frozenset:
                text = "{" + text[1:-1] + "}"
            return text[:-1] + ", ..." + text[-1]
        text = repr(value)
    except Exception:
        return f"<{cls.__name__}>"
    if " at 0x" in text:
        text = _ADDRESS.sub("", text)  # the same value must preview the same in every run
    return text


def _one_line(text: str) -> str:
    if "\n" in text or "\t" in text or "  " in text:
        return " ".join(text.split())
    return text


def format_args(args: Any, kwargs: dict[str, Any], limit: int = 40) -> str:
    """A call's arguments as they would be written: ``1, 'a', n=2``."""
    parts = [short_repr(a, limit) for a in args]
    parts += [f"{k}={short_repr(v, limit)}" for k, v in kwargs.items()]
    return ", ".join(parts)
