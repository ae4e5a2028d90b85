"""Word frequencies over a folder of text files: a small dynamic lazyflow workflow.

The list of files is only known at run time (``main`` lists the folder when it runs),
each file is counted by its own cached call, and a changed file re-runs only its count.

Run it alone::

    lazyflow run examples/word_frequencies.py main --data-dir some/folder --top 5

or inside Airflow: examples/airflow/word_frequencies_dag.py.
"""

from __future__ import annotations

import os
import re
from collections import Counter

from lazyflow_core import File, task

WORD = re.compile(r"[a-z']+")


@task
def count_words(doc: File) -> dict[str, int]:
    """Word counts of one text file (re-runs only when that file changes)."""
    return dict(Counter(WORD.findall(doc.read().lower())))


@task
def merge(counts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(total)


@task
def top_words(counts: dict[str, int], top: int) -> list[list[object]]:
    """The `top` most frequent words as [word, count] pairs, ties broken alphabetically."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [[word, n] for word, n in ranked[:top]]


@task
def main(data_dir: str, top: int = 10) -> dict[str, object]:
    """Count words in every ``*.txt`` under `data_dir`; report the most frequent ones."""
    docs = [
        File(os.path.join(data_dir, name))
        for name in sorted(os.listdir(data_dir))
        if name.endswith(".txt")
    ]
    counts = merge([count_words(d) for d in docs])
    return {"files": len(docs), "top": top_words(counts, top)}
