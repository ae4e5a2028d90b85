"""Provenance queries: read-only answers from the store's tables.

The store keeps a Merkle graph of calls (``lf_calls``: task hash, result hash; arguments
in ``lf_call_args``; child calls in ``lf_call_children``) and, per execution, the jobs
that ran or reused those calls (``lf_jobs``, linked to their parent job). This package
answers the questions people ask of that graph:

- what produced this value or file: `Provenance.producer`, `Provenance.file_producers`,
  and recursively, with inputs, code and execution, `Provenance.lineage`;
- which calls consumed a value: `Provenance.consumers`, recursively `consumer_tree`;
- what a run executed and what it reused: `Provenance.run_report`, `Provenance.call_tree`;
- every call in effect in a run, for comparing runs: `Provenance.execution_calls`;
- a page of executions (`Provenance.executions` with `offset`), per-task counts of one
  (`Provenance.task_counts`), its calls grouped by task for a graph that scales
  (`call_groups`) and the data flow between calls (`data_flows`).

Ids may be given as unique prefixes everywhere; an unknown id raises `NoSuchRecord`, a
prefix matching several records raises `AmbiguousPrefix`. Nothing here writes.

Modules, each importing only the ones before it: `records` (the records and errors),
`queries` (basic lookups by id, an execution's call tree and report), `lineage`
(`Provenance`: producers, lineage and consumers; how a producer is chosen and how
container arguments are followed is described there) and `graph` (grouped calls and
data flow).
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes
from .records import (
    AmbiguousPrefix,
    Arg,
    Call,
    CallNode,
    Execution,
    FileRecord,
    Input,
    Job,
    JobFile,
    Lineage,
    NoSuchRecord,
    ProvenanceError,
    RunReport,
    Step,
    TaskCount,
    TaskVersion,
    Use,
    Value,
)

if TYPE_CHECKING:
    from .graph import (
        CallGroup,
        CallGroups,
        Flow,
        FlowSource,
        call_groups,
        data_flows,
        group_key,
    )
    from .lineage import MAX_PARTS, Provenance, could_feed
    from .queries import job_ref

# The query modules import SQLAlchemy (~0.2 s): loaded on first use, so that the
# records can be imported alone (``lazyflow log`` lists executions without SQLAlchemy).
_LAZY = {
    "CallGroup": "graph",
    "CallGroups": "graph",
    "Flow": "graph",
    "FlowSource": "graph",
    "call_groups": "graph",
    "data_flows": "graph",
    "group_key": "graph",
    "MAX_PARTS": "lineage",
    "Provenance": "lineage",
    "could_feed": "lineage",
    "job_ref": "queries",
}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "MAX_PARTS",
    "AmbiguousPrefix",
    "Arg",
    "Call",
    "CallGroup",
    "CallGroups",
    "CallNode",
    "Execution",
    "FileRecord",
    "Flow",
    "FlowSource",
    "Input",
    "Job",
    "JobFile",
    "Lineage",
    "NoSuchRecord",
    "Provenance",
    "ProvenanceError",
    "RunReport",
    "Step",
    "TaskCount",
    "TaskVersion",
    "Use",
    "Value",
    "call_groups",
    "could_feed",
    "data_flows",
    "group_key",
    "job_ref",
]
