"""Entry point: ``python -m benchmarks [SCENARIO ...] [--quick]``."""

from benchmarks.cli import main

raise SystemExit(main())
