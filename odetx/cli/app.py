"""The ``odetx`` command: wiring only; each subcommand lives in its own module."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import typer
import typer.core
from rich.markup import escape

import odetx
from odetx.cli.display import err_console
from odetx.cli.loading import load_for
from odetx.cli.options import PluginOpt
from odetx.errors import OdetxError
from odetx.origins import load


class PluginGroup(typer.core.TyperGroup):
    """The root command: it loads plugins (:func:`odetx.cli.loading.load_for`) before the
    subcommand reads its options, so their entries are choices like the built-in ones."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and not ctx.resilient_parsing:
            try:
                load_for(args)
            except OdetxError as e:
                fail(e.in_command(args[0]), e.exit_code)
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="odetx",
    cls=PluginGroup,
    help="Train, evaluate, compare and export transformers read as ODE integrators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


# typer vendors click, whose UsageError it exposes only as BadParameter's base.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]


def fail(message: str, code: int) -> None:
    if message:  # an empty message: another process has already reported this failure
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _rank() -> int:
    """This process's rank under torchrun (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def command(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn odetx errors, unusable paths and Ctrl-C into one line and an exit code,
    never a traceback; errors may name the command ``name`` they stopped."""

    @functools.wraps(fn)
    def wrapper(*args: Any, plugin: list[str] | None = None, **kwargs: Any) -> Any:
        try:
            for spec in plugin or []:  # loaded already, before the options were read
                load(spec)
            return fn(*args, **kwargs)
        except OdetxError as e:
            fail("" if e.every_rank and _rank() > 0 else e.in_command(name), e.exit_code)
        except OSError as e:  # a path odetx could not use: the OS's own words, one line
            where = e.filename if e.filename is not None else "file system"
            fail(f"{where}: {e.strerror or e}", 1)
        except KeyboardInterrupt:
            fail("interrupted; files already written are kept", 130)

    # Every command takes --plugin, declared once here rather than in each command.
    signature = inspect.signature(fn, eval_str=True)
    extra = inspect.Parameter("plugin", inspect.Parameter.KEYWORD_ONLY, annotation=PluginOpt)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), extra.replace(default=None)]
    )
    wrapper.__annotations__ = {**fn.__annotations__, "plugin": PluginOpt}
    return wrapper


def _version(value: bool) -> None:
    if value:
        print(f"odetx {odetx.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train, evaluate, compare and export transformers read as ODE integrators."""


def _register() -> None:
    from odetx.cli import (
        compare,
        data,
        evaluate,
        export,
        generate,
        importing,
        inspect,
        listing,
        predict,
        train,
    )

    for name, fn in (
        ("train", train.train),
        ("eval", evaluate.eval_cmd),
        ("compare", compare.compare_cmd),
        ("export", export.export_cmd),
        ("generate", generate.generate_cmd),
        ("inspect", inspect.inspect_cmd),
        ("list", listing.list_cmd),
        ("predict", predict.predict_cmd),
        ("import", importing.import_cmd),
    ):
        app.command(name)(command(name, fn))
    data_app = typer.Typer(help="Prepare datasets offline.", no_args_is_help=True)
    data_app.command("listops")(command("data listops", data.data_listops))
    data_app.command("text")(command("data text", data.data_text))
    app.add_typer(data_app, name="data")


_register()


def main() -> None:
    # Not standalone: click's usage errors (unknown option, bad value) come back here
    # to be printed as one line like every other error, instead of a boxed panel.
    try:
        code = app(standalone_mode=False)
    except UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "odetx"
        err_console.print(
            f"[bold red]error:[/] {escape(e.format_message())} (see {escape(where)} --help)",
            highlight=False,
            soft_wrap=True,
        )
        code = 2
    except typer.Abort:  # Ctrl-C outside a command
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
