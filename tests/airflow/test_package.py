"""lazyflow_airflow uses only lazyflow's public API."""

from __future__ import annotations

from pathlib import Path

from tests.public_api import imports_outside_the_public_api


def test_only_the_public_core_api_is_used() -> None:
    package = Path(__file__).resolve().parents[2] / "lazyflow_airflow"
    assert imports_outside_the_public_api(package) == []
