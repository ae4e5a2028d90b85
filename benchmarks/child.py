"""Run one benchmark case in this (fresh) interpreter and print its result as JSON.

Usage: ``python -m benchmarks.child '{"system": ..., "workload": ..., "params": {...}}'``.
The workload function ``benchmarks.wl_<system>.<workload>(**params)`` returns a dict
(``wall`` seconds, ``jobs``, ``value``, ...). Failures of the measured system are results,
not crashes: the exception type and message are reported (``RecursionError`` in redun's
deep chains is an expected outcome). The last stdout line starts with ``MARKER``.

Only the standard library is imported here: this module also runs under redun's venv.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
import traceback
from typing import Any

MARKER = "BENCH-RESULT "


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the workload named by ``spec`` and return its result dict."""
    t0 = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.wl_{spec['system']}")
        func = getattr(module, spec["workload"])
        result: dict[str, Any] = dict(func(**spec["params"]))
        result["ok"] = True
    except (Exception, RecursionError) as exc:  # the measured system failed: report it
        result = {
            "ok": False,
            "error": f"{type(exc).__name__}: {str(exc)[:300]}",
            "traceback": traceback.format_exc(limit=8)[-3000:],
        }
    result["child_seconds"] = time.perf_counter() - t0
    result["self_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["children_maxrss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    result = run_spec(spec)
    sys.stdout.flush()
    print(MARKER + json.dumps(result, default=repr), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
