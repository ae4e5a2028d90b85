"""Speed and scale benchmarks for lazyflow, side by side with plain Python and redun.

Run ``python -m benchmarks [SCENARIO ...] [--quick]``; see ``benchmarks/README.md``.

Layout: ``scenarios`` declares what is measured (cases and targets), ``runner`` runs
every case in a fresh interpreter (``child``) so that peak RSS and in-memory caches are
isolated, the ``wl_*`` modules hold the workloads of each system, and ``report`` turns
results into the console summary and the markdown tables of ``benchmarks/README.md``.
The ``child`` and ``wl_plain``/``wl_redun`` modules import only the standard library at
module level, because redun's workloads run under redun's own virtual environment.
"""
