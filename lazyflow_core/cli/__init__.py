"""The ``lazyflow`` command: run workflows, then inspect what they did.

``run`` and ``explain`` call a task of a workflow; ``log``, ``lineage``, ``diff``,
``viz``, ``ui`` (a web browser of it) and ``repl`` (a Python prompt over it) read the
provenance store (see `lazyflow_core.provenance`); ``push``, ``pull``, ``export`` and
``import`` copy executions between stores; ``db`` and ``gc`` look after the store.
Errors in what the user typed (a missing file or task, a bad option value, an unknown
id, an unreachable database) print one line and exit with status 2 (usage) or 1; a
failing task prints its error and the user's frames and exits with 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from .. import __version__

__all__ = ["cli", "main"]

# name -> (module, attribute, one-line help). A command's module is imported only when
# that command runs: `lazyflow --help` and `lazyflow log` do not pay for SQLAlchemy's
# schema layer, rich or the scheduler (see benchmarks/README.md, start-up).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run", "run_command", "Run a task of a workflow."),
    "explain": ("run", "explain_command", "Dry run: what would run, and why."),
    "log": ("log", "log_command", "List executions, or show one execution or job."),
    "lineage": ("lineage", "lineage_command", "Where a file or value came from."),
    "diff": ("diff", "diff_command", "Which calls differ between two executions, and why."),
    "viz": ("viz", "viz_command", "Draw an execution's call graph (DOT or HTML)."),
    "ui": ("ui", "ui_command", "Browse executions, jobs, lineage and diffs in a web browser."),
    "repl": ("repl", "repl_command", "A Python prompt with the store's records loaded lazily."),
    "tag": ("tag", "tag_group", "Add, remove or list the tags of executions."),
    "push": ("sync", "push_command", "Copy executions (and their values) to another store."),
    "pull": ("sync", "pull_command", "Copy executions (and their values) from another store."),
    "export": ("sync", "export_command", "Write executions (and their values) to a file."),
    "import": ("sync", "import_command", "Read executions (and their values) from a file."),
    "db": ("db", "db_group", "Inspect or upgrade the store."),
    "gc": ("db", "gc_command", "Remove values nothing refers to (dry run by default)."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when used; help lists them from `COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        import importlib

        module = importlib.import_module(f"{__name__}.{entry[0]}")
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lazyflow")
def cli() -> None:
    """lazyflow: workflows as lazy Python expressions, cached and recorded.

    \b
      lazyflow run flows.py main --n 200     run a task (twice: the second is cached)
      lazyflow log                           list executions
      lazyflow log -                         the latest execution's calls
      lazyflow log 1a2b                      one execution's calls (id prefixes are fine)
      lazyflow diff -                        the latest execution against the one before
      lazyflow lineage results/out.csv       where a file or value came from
      lazyflow explain flows.py main --n 201 what would run, and why
      lazyflow ui                            browse executions, graphs, lineage

    Every command takes --db URL (default: $LAZYFLOW_DB, else the project's store found
    upwards from here: lazyflow.toml or .lazyflow/).
    """


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
    except BrokenPipeError:
        code = 1
    except Exception as exc:
        # `errors` (with concurrent.futures and logging) is not imported for `--help`:
        # while it is not loaded, no LazyflowError can have been raised
        errors = sys.modules.get("lazyflow_core.errors")
        if errors is None or not isinstance(exc, errors.LazyflowError):
            raise
        code = _fail(str(exc).replace("\n", " "), 1)
    if argv is None:
        sys.exit(code)
    return code
