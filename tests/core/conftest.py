"""Fixtures of the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .user_code import UserModules


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[UserModules]:
    """User modules written under a temporary directory, imported as the user's code."""
    m = UserModules(tmp_path)
    yield m
    m.close()
