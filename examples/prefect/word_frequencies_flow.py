"""A Prefect flow that mixes ordinary Prefect tasks with one lazyflow workflow.

    fetch_corpus (@task)  ->  run_lazyflow(word_frequencies:main)  ->  publish (@task)

``run_lazyflow`` runs the whole dynamic workflow in examples/word_frequencies.py (one
cached call per file) as a single Prefect task. Running the flow again re-counts only the
files that changed; a Prefect retry of the lazyflow task re-runs only the calls that
failed. Each run publishes two artifacts, ``lazyflow-word-frequencies-main`` (summary) and
``lazyflow-word-frequencies-main-jobs`` (one row per call); see docs/prefect.md.

Run it::

    python examples/prefect/word_frequencies_flow.py

The lazyflow store is the flow's ``db`` parameter: a SQLAlchemy URL, the name of a saved
`LazyFlowStore` block (``"lazyflow-store/team"``), or empty for ``LAZYFLOW_DB`` /
``.lazyflow/lazyflow.db`` in the working directory.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from lazyflow_prefect import run_lazyflow

# In a deployment the workflow is usually an installed module ("mypkg.words:main");
# a path works too and is imported when the task runs.
WORKFLOW = f"{Path(__file__).resolve().parents[1] / 'word_frequencies.py'}:main"

TEXTS = {
    "lazy.txt": "The lazy dog sleeps. The lazy cat sleeps too.",
    "flow.txt": "Work flows when the work is lazy and the cache is warm.",
    "cache.txt": "A warm cache makes the second run free: the cache remembers.",
}


@task
def fetch_corpus(data_dir: str) -> str:
    """Stand-in for a real extract step: writes a few text files."""
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in TEXTS.items():
        path = folder / name
        if not path.exists() or path.read_text() != text:  # keep mtimes stable
            path.write_text(text)
    return str(folder)


@task
def publish(frequencies: dict[str, object]) -> str:
    """Stand-in for a load step: report the most frequent word."""
    top = frequencies["top"]
    assert isinstance(top, list)
    word, count = top[0]
    line = f"{word}: {count}"
    get_run_logger().info("most frequent word in %s files: %s", frequencies["files"], line)
    return line


# A retry waits 10 s and runs the workflow again; lazyflow's cache makes that a re-run of
# only the calls that failed.
count_words = run_lazyflow.with_options(retries=2, retry_delay_seconds=10)


@flow(name="lazyflow-word-frequencies")
def word_frequencies(
    data_dir: str = "/tmp/lazyflow-example/corpus", top: int = 5, db: str | None = None
) -> dict[str, object]:
    """Count words in a corpus with lazyflow, between two ordinary Prefect tasks.

    Args:
        data_dir: folder of ``*.txt`` files (created with sample texts).
        top: how many words to report.
        db: lazyflow store URL or ``"lazyflow-store/<block name>"``; empty for the default.
    """
    corpus = fetch_corpus(data_dir)
    frequencies: dict[str, object] = count_words(WORKFLOW, corpus, top=top, db=db)
    publish(frequencies)
    return frequencies


if __name__ == "__main__":
    print(word_frequencies())
