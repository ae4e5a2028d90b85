"""A deployment script in a module of its own (not the workflow's): served by a test.

``python -m tests.prefect.served NAME`` serves `line_counts` as deployment NAME; the
deployment's entrypoint is this file and the name the flow is bound to here.
"""

from __future__ import annotations

import sys

from lazyflow_prefect import lazyflow_flow
from tests.prefect.workflows import count_lines

line_counts = lazyflow_flow(count_lines)  # not named count_lines_flow on purpose

if __name__ == "__main__":
    line_counts.serve(name=sys.argv[1], print_starting_message=False)
