"""The ``medkit`` command: a click group whose verbs live in ``cmd_<verb>.py``."""

from __future__ import annotations

import logging
import sys

import click

from medkit import __version__

__all__ = ["cli", "main"]


class MedkitGroup(click.Group):
    """Turns every error into one line on stderr and exit code 1; ``--debug`` shows the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # a bad option value or a missing argument: one line too, and exit 1
            where = f" (see '{e.ctx.command_path} -h')" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{where}", err=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as e:  # the one place that turns library errors into a clean exit
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {_one_line(e)}", err=True)
            sys.exit(1)


def _one_line(exc: BaseException) -> str:
    from medkit.data.inference import error_message
    from medkit.errors import medkit_cause

    cause = medkit_cause(exc)  # MONAI wraps config and transform errors; show medkit's own message
    if cause is not None:
        return str(cause)
    return error_message(exc, type(exc).__name__).split(": ", 1)[-1]


@click.group(cls=MedkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medkit")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """medkit: prepare data, train, evaluate, explain and infer with MONAI bundles."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    from medkit.cli import (
        cmd_crossval,
        cmd_demo,
        cmd_evaluate,
        cmd_explain,
        cmd_export,
        cmd_infer,
        cmd_label_server,
        cmd_lr_find,
        cmd_prepare,
        cmd_serve,
        cmd_threshold,
        cmd_train,
        cmd_tune,
        cmd_verify,
    )

    for module in (
        cmd_prepare,
        cmd_train,
        cmd_evaluate,
        cmd_explain,
        cmd_infer,
        cmd_lr_find,
        cmd_tune,
        cmd_crossval,
        cmd_threshold,
        cmd_verify,
        cmd_export,
        cmd_serve,
        cmd_label_server,
        cmd_demo,
    ):
        cli.add_command(module.command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(obj={})


if __name__ == "__main__":
    main()
