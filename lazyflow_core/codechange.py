"""What changed between two versions of a task's code, in words and as a diff.

A task version is stored with its readable source, the hash of every global name it
refers to (``dependencies``) and the source of the user's own helpers, classes and
constants among them (``dependency_sources``). `explain` and `diff` compare two
versions with the functions here, so both name the helper, constant or class whose hash
changed (``helper gc_content changed``) and show a unified diff of its source.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """One version of a task's code as recorded (see the module doc)."""

    name: str
    source: str
    dependencies: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def stored(
        cls, name: str, source: str | None, dependencies: str | None, sources: str | None
    ) -> CodeVersion:
        """From the columns of an ``lf_tasks`` row (JSON text, NULL in old rows)."""
        return cls(
            name,
            source or "",
            json.loads(dependencies) if dependencies else {},
            json.loads(sources) if sources else {},
        )


def changed_names(before: CodeVersion, after: CodeVersion) -> list[str]:
    """Names the task refers to whose hash differs (added and removed ones too)."""
    a, b = before.dependencies, after.dependencies
    return sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))


def kind(source: str | None) -> str:
    """``helper``, ``class`` or ``constant`` from a stored dependency source."""
    if source is None:
        return "code"
    first = next((line for line in source.splitlines() if not line.startswith("@")), "")
    if first.startswith("class "):
        return "class"
    if first.startswith(("def ", "async def ")):
        return "helper"
    return "constant"


def summary(before: CodeVersion, after: CodeVersion) -> str:
    """``its source changed; helper gc_content changed`` (what explain and diff say)."""
    parts = []
    if before.source and after.source and before.source != after.source:
        parts.append("its source changed")
    for name in changed_names(before, after):
        text = after.sources.get(name) or before.sources.get(name)
        if name not in after.dependencies:
            parts.append(f"it no longer uses {name}")
        elif name not in before.dependencies:
            parts.append(f"it now uses {kind(text)} {name}")
        else:
            parts.append(f"{kind(text)} {name} changed")
    if not parts:
        return "code it uses (helpers, constants, classes) changed"
    if not parts[0].startswith("its source"):
        parts.insert(0, "its source is unchanged")
    return "; ".join(parts)


def unified_diff(
    before: CodeVersion, after: CodeVersion, labels: tuple[str, str] = ("cached", "now")
) -> str:
    """The diff of the task's source, then of each changed helper, class or constant
    whose source is stored ("" when none is); file names are ``name (label)``."""
    chunks = []
    if before.source and after.source:
        chunks.append(_diff(before.source, after.source, after.name, labels))
    for name in changed_names(before, after):
        old, new = before.sources.get(name), after.sources.get(name)
        if old is not None or new is not None:
            chunks.append(_diff(old or "", new or "", name, labels))
    return "\n".join(c for c in chunks if c)


def _diff(old: str, new: str, name: str, labels: tuple[str, str]) -> str:
    a, b = (f"{name} ({label})" for label in labels)
    return "\n".join(difflib.unified_diff(old.splitlines(), new.splitlines(), a, b, lineterm=""))
