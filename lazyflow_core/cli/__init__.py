"""The ``lazyflow`` command: run workflows, then inspect what they did.

``run`` and ``explain`` call a task of a workflow; ``log``, ``lineage``, ``diff`` and
``viz`` read the provenance store (see `lazyflow_core.provenance`); ``db`` and ``gc``
look after the store. Errors in what the user typed (a missing file or task, a bad option
value, an unknown id, an unreachable database) print one line and exit with status 2
(usage) or 1; a failing task prints its error and the user's frames and exits with 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from .. import __version__
from ..errors import LazyflowError
from .db import db_group, gc_command
from .diff import diff_command
from .lineage import lineage_command
from .log import log_command
from .run import explain_command, run_command
from .viz import viz_command

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lazyflow")
def cli() -> None:
    """lazyflow: workflows as lazy Python expressions, cached and recorded.

    \b
      lazyflow run flows.py main --n 200     run a task (twice: the second is cached)
      lazyflow log                           list executions
      lazyflow log 1a2b                      one execution's call tree
      lazyflow lineage results/out.csv       where a file or value came from
      lazyflow explain flows.py main --n 201 what would run, and why

    Every command takes --db URL (default: $LAZYFLOW_DB, else .lazyflow/lazyflow.db).
    """


for _command in (
    run_command,
    explain_command,
    log_command,
    lineage_command,
    diff_command,
    viz_command,
    db_group,
    gc_command,
):
    cli.add_command(_command)


def _fail(message: str, code: int) -> int:
    click.echo(f"error: {message}", err=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lazyflow`` executable; returns (and exits with) the status."""
    # the store records the command line of each execution; show it as typed
    sys.argv[0] = "lazyflow"
    try:
        status = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="lazyflow",
            standalone_mode=False,
        )
        code = status if isinstance(status, int) else 0
    except click.exceptions.NoArgsIsHelpError as exc:  # `lazyflow`, `lazyflow db`
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        code = 0
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        code = _fail(exc.format_message().replace("\n", " ") + hint, exc.exit_code)
    except click.ClickException as exc:
        code = _fail(exc.format_message().replace("\n", " "), exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        code = _fail("interrupted", 130)
    except LazyflowError as exc:
        code = _fail(str(exc).replace("\n", " "), 1)
    except BrokenPipeError:
        code = 1
    if argv is None:
        sys.exit(code)
    return code
