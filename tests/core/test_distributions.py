"""Which distribution provides a module (`distributions`): the answer of
`importlib.metadata.packages_distributions`, without building its whole map."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lazyflow_core import distributions


@pytest.fixture
def fresh_index() -> Iterator[None]:
    """The index rebuilt for the test (and again after it: sys.path changed back)."""
    distributions._index.cache_clear()
    distributions.providers.cache_clear()
    distributions.distribution_version.cache_clear()
    yield
    distributions._index.cache_clear()
    distributions.providers.cache_clear()
    distributions.distribution_version.cache_clear()


def test_every_installed_module_has_importlibs_providers(fresh_index: None) -> None:
    expected = importlib.metadata.packages_distributions()
    assert len(expected) > 20  # (this environment installs every extra)
    for top, names in expected.items():
        assert distributions.providers(top) == tuple(names), top
    assert distributions.providers("no_such_module_anywhere") == ()


def _dist_info(root: Path, name: str, record: str, top_level: str | None = None) -> None:
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "RECORD").write_text(record)
    if top_level is not None:
        (info / "top_level.txt").write_text(top_level)


def test_records_without_top_level_are_read_as_importlib_infers(tmp_path: Path) -> None:
    """A wheel without top_level.txt (hatchling, flit): the top-level names of the
    ``.py`` files in its RECORD, a quoted path (with a comma) included, a dot-file
    ``.py`` not; a declared top_level.txt wins over the RECORD. Both distributions are
    read from their own directory (no global discovery: other tests' sys.path)."""
    record = (
        "lf_probe_pkg/__init__.py,sha256=x,1\n"
        "lf_probe_pkg/sub/mod.py,sha256=x,1\n"
        "lf_probe_single.py,sha256=x,1\n"
        '"lf_probe_odd,name.py",sha256=x,1\n'
        "lf_probe_data/readme.txt,sha256=x,1\n"
        "lf_probe_dot/.py,sha256=x,1\n"
        "lf_probe_inferred-1.2.3.dist-info/RECORD,,\n"
    )
    _dist_info(tmp_path, "lf_probe_inferred", record)
    _dist_info(tmp_path, "lf_probe_declared", "lf_probe_pkg/__init__.py,,\n", "lf_probe_other\n")
    here = importlib.metadata.distributions(path=[str(tmp_path)])
    found = {dist.metadata["Name"]: dist for dist in here}
    assert set(found) == {"lf_probe_inferred", "lf_probe_declared"}
    # (What importlib's path objects infer for these lines; the test below compares the
    # two over every installed distribution. Compared here too, in a full CI run
    # importlib's `files` came back empty for these made-up distributions only.)
    expected = {"lf_probe_pkg", "lf_probe_single", "lf_probe_odd,name"}
    assert set(distributions._provided(found["lf_probe_inferred"])) == expected
    assert list(distributions._provided(found["lf_probe_declared"])) == ["lf_probe_other"]


def test_versions_of_the_standard_library_and_of_unknown_modules(fresh_index: None) -> None:
    assert distributions.distribution_version("json") == "json"  # the standard library
    assert distributions.distribution_version("no_such_module_xyz") == "no_such_module_xyz"


def test_hashing_third_party_code_does_not_build_importlibs_map() -> None:
    """The first task of a process that uses a third-party module no longer builds the
    map of every installed distribution (1.5 s with Airflow installed here)."""
    top = "click"  # (lazyflow's CLI depends on it)
    probe = (
        "import importlib.metadata as m\n"
        "def refuse():\n"
        "    raise AssertionError('packages_distributions was called')\n"
        "m.packages_distributions = refuse\n"
        f"import {top}\n"
        "from lazyflow_core.codehash import function_hash\n"
        f"def uses(x):\n    return {top}.echo(x)\n"
        "function_hash(uses)\n"
        "from lazyflow_core.distributions import distribution_version\n"
        f"print(distribution_version({top!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"click=={importlib.metadata.version('click')}"


def test_record_inference_matches_importlib_for_every_installed_distribution() -> None:
    """The RECORD read as text gives the top-level names importlib's path objects give,
    for each installed distribution (not only the ones without top_level.txt)."""
    checked = 0
    for dist in importlib.metadata.distributions():
        record = dist.read_text("RECORD")
        if record is None:
            continue
        expected = {
            f.parts[0] if len(f.parts) > 1 else f.with_suffix("").name
            for f in dist.files or ()
            if f.suffix == ".py"
        }
        assert distributions._inferred(record) == expected, dist.metadata["Name"]
        checked += 1
    assert checked > 20


def test_versions_agree_with_importlibs_first_provider(fresh_index: None) -> None:
    """`distribution_version` takes the distribution named after the module when it
    provides it, else importlib's first provider: the same as before wherever the two
    agree (every module here but the documented case of several providers)."""
    for top, names in importlib.metadata.packages_distributions().items():
        named = [n for n in names if n.lower().replace("_", "-") == top.lower().replace("_", "-")]
        if len(names) > 1 and named and named[0] != names[0]:
            continue  # several providers, the named one not first: it wins now
        expected = f"{names[0]}=={importlib.metadata.version(names[0])}"
        if named:
            expected = f"{named[0]}=={importlib.metadata.version(named[0])}"
        assert distributions.distribution_version(top) == expected, top


def test_a_module_named_like_its_distribution_needs_no_index() -> None:
    probe = (
        "from lazyflow_core import distributions as d\n"
        "print(d.distribution_version('click'), d._index.cache_info().currsize)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [f"click=={importlib.metadata.version('click')}", "0"]
