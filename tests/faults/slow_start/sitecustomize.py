"""Makes the store's writer process start slowly, as it does on a loaded machine (0.1-0.8 s
there; ~30 ms idle). A directory on ``PYTHONPATH`` (see `harness.slow_writer_start`):
Python imports ``sitecustomize`` at start-up, before the script runs, so the process
really is not up for ``LAZYFLOW_TESTS_WRITER_START_DELAY`` seconds. Other processes (the
run, its workers) are not slowed.
"""

import os
import sys
import time

_delay = os.environ.get("LAZYFLOW_TESTS_WRITER_START_DELAY")
if _delay and sys.argv and sys.argv[0].endswith("batch_write.py"):
    time.sleep(float(_delay))
