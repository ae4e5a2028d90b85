"""``python -m lazyflow_airflow [--conn-id ID] COMMAND ...``: the lazyflow CLI on the store
of an Airflow connection.

The task log of a LazyFlowOperator ends with a command to inspect the run. When the
store's URL holds a password, that command cannot show it; it names the connection
instead, and this module turns the connection into the store URL (through ``LAZYFLOW_DB``,
never the command line) and runs the lazyflow command::

    python -m lazyflow_airflow --conn-id lazyflow_default log 3f2a9c
    python -m lazyflow_airflow lineage /data/report.csv     # [lazyflow] conn_id's store

It reads the connection wherever Airflow's configuration lets it: environment variables,
secrets backends, or the metadata database (see `LazyFlowHook.get_conn`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: python -m lazyflow_airflow [--conn-id CONN_ID] COMMAND [ARGS...]"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    conn_id = None
    if args[:1] == ["--conn-id"] and len(args) >= 2:
        conn_id, args = args[1], args[2:]
    elif args and args[0].startswith("--conn-id="):
        conn_id, args = args[0].split("=", 1)[1], args[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        print(__doc__.split("\n\n", 1)[1].rstrip())
        return 0 if args else 2
    from lazyflow_airflow.hooks import LazyFlowHook
    from lazyflow_airflow.store import default_conn_id

    name = conn_id or default_conn_id()
    try:
        url = LazyFlowHook(name).get_store_url()
    except Exception as exc:
        print(f"lazyflow_airflow: cannot read Airflow connection {name!r}: {exc}", file=sys.stderr)
        return 1
    from lazyflow_core.integration import cli_on_store

    return cli_on_store(url, args)


if __name__ == "__main__":
    sys.exit(main())
