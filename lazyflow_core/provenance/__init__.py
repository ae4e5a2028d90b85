"""Provenance queries: read-only answers from the store's tables.

The store keeps a Merkle graph of calls (``lf_calls``: task hash, result hash; arguments
in ``lf_call_args``; child calls in ``lf_call_children``) and, per execution, the jobs
that ran or reused those calls (``lf_jobs``, linked to their parent job). This package
answers the questions people ask of that graph:

- what produced this value or file: `Provenance.producer`, `Provenance.file_producers`,
  and recursively, with inputs, code and execution, `Provenance.lineage`;
- which calls consumed a value: `Provenance.consumers`, recursively `consumer_tree`;
- what a run executed and what it reused: `Provenance.run_report`, `Provenance.call_tree`;
- every call in effect in a run, for comparing runs: `Provenance.execution_calls`.

Ids may be given as unique prefixes everywhere; an unknown id raises `NoSuchRecord`, a
prefix matching several records raises `AmbiguousPrefix`. Nothing here writes.

Modules, each importing only the ones before it: `records` (the records and errors),
`queries` (basic lookups by id, an execution's call tree and report) and `lineage`
(`Provenance`: producers, lineage and consumers; how a producer is chosen and how
container arguments are followed is described there).
"""

from .lineage import MAX_PARTS, Provenance, could_feed
from .queries import job_ref
from .records import (
    AmbiguousPrefix,
    Arg,
    Call,
    CallNode,
    Execution,
    FileRecord,
    Input,
    Job,
    Lineage,
    NoSuchRecord,
    ProvenanceError,
    RunReport,
    Step,
    TaskVersion,
    Use,
    Value,
)

__all__ = [
    "MAX_PARTS",
    "AmbiguousPrefix",
    "Arg",
    "Call",
    "CallNode",
    "Execution",
    "FileRecord",
    "Input",
    "Job",
    "Lineage",
    "NoSuchRecord",
    "Provenance",
    "ProvenanceError",
    "RunReport",
    "Step",
    "TaskVersion",
    "Use",
    "Value",
    "could_feed",
    "job_ref",
]
