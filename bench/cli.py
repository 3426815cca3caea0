"""The `bench` command line: one Typer app, one module per command group.

Every command shares the same conventions: ``--config PATH`` (default ./bench.toml,
falling back to the packaged defaults), ``-q/--quiet``, ``--json`` where it reports
values, and exit codes 0 ok, 1 failure, 2 bad usage or config.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Annotated, Any

import typer
import typer.core

from bench import console
from bench.commands import checkpoint as checkpoint_command
from bench.commands import compare as compare_command
from bench.commands import data as data_command
from bench.commands import profile as profile_command
from bench.commands import report as report_command
from bench.commands import run as run_command
from bench.commands import score as score_command
from bench.commands import ui as ui_command
from bench.commands import weights as weights_command
from bench.errors import EXIT_FAILURE, BenchError
from bench.options import ARGV_KEY, ConfigOption, JsonOption, QuietOption, examples, setup

# requests tries urllib3's optional SOCKS support on import and urllib3 warns that PySocks is
# missing: a line about a proxy nobody configured, in the middle of a run's output
warnings.filterwarnings("ignore", message="SOCKS support in urllib3 requires")


class _Group(typer.core.TyperGroup):
    """Turns :class:`BenchError` into one red line and its exit code, for every command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[ARGV_KEY] = list(args)  # as typed after `bench`, for "run this next" lines
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BenchError as failure:
            console.error(str(failure))
            ctx.exit(failure.exit_code)
        except KeyboardInterrupt:
            console.error("interrupted")
            ctx.exit(130)
        except BrokenPipeError:  # `bench ... | head` stopped reading: not an error of ours
            _quiet_stdout()
            ctx.exit(0)
        except OSError as failure:  # the file system said no: one line, not a traceback
            where = f"{failure.filename}: " if failure.filename else ""
            console.error(f"{where}{failure.strerror or failure}; check the path and its permissions")  # fmt: skip
            ctx.exit(EXIT_FAILURE)


app = typer.Typer(
    cls=_Group,
    help="Benchmark and reproducibility harness for residual diffusion models "
    "(RDDM, Resfusion, SR3, DDIM) in image restoration.",
    no_args_is_help=True,
    # click's plain help: rich's option tables cut words with "…" at 80 columns
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from bench import __version__

        typer.echo(f"bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """Benchmark and reproducibility harness for residual diffusion models."""


@app.command(
    epilog=examples("bench env", "bench env --json > env.json"),
)
def env(
    config_path: ConfigOption = None, quiet: QuietOption = False, as_json: JsonOption = False
) -> None:
    """Show Python, torch, CUDA, devices, package versions, the git commit and the config."""
    from bench.envinfo import environment

    config = setup(config_path, quiet, as_json)
    record = environment()
    record["config"] = {
        "file": str(config.source),
        "tracking_uri": config.tracking_uri(),
        **{name: str(value) for name, value in vars(config.paths).items()},
    }
    rows = [
        (key, value) for key, value in record.items() if key not in ("packages", "git", "config")
    ]
    rows += [(f"config {key}", value) for key, value in record["config"].items()]
    rows += [("git commit", record["git"]["commit"]), ("git dirty", record["git"]["dirty"])]
    rows += [
        (f"  {name}", version or "not installed") for name, version in record["packages"].items()
    ]
    console.emit(record, console.table("environment", ["item", "value"], rows))


# Command registration: one line per command module in bench/commands/.
app.command(epilog=run_command.EXAMPLE)(run_command.run)
app.command(epilog=report_command.EXAMPLE)(report_command.report)
app.command(epilog=score_command.EPILOG)(score_command.score)
app.command(epilog=compare_command.EPILOG)(compare_command.compare)
app.add_typer(data_command.app, name="data")
app.command(epilog=profile_command.EXAMPLE)(profile_command.profile)
app.add_typer(weights_command.app, name="weights")
app.add_typer(checkpoint_command.app, name="checkpoint")
app.command(epilog=ui_command.EXAMPLE)(ui_command.ui)


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so flushing at exit into the closed pipe does not
    raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # raised while printing --help, before a command runs
        _quiet_stdout()
        raise SystemExit(0) from None
    except BenchError as failure:  # raised outside a command (e.g. during completion)
        console.error(str(failure))
        raise SystemExit(EXIT_FAILURE) from None
