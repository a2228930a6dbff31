"""The `worldgen` command line.

Each area of worldgen registers its commands from a module in
`worldgen.commands`; those modules import torch and friends inside the
command functions, so `worldgen --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from worldgen.errors import WorldgenError

app = typer.Typer(
    name="worldgen",
    help="Generate, view, render and convert Gaussian-splat worlds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """Generate, view, render and convert Gaussian-splat worlds."""


#: modules under worldgen.commands, each with a `register(app)` function
COMMAND_MODULES: list[str] = ["view", "render", "formats", "procedural", "eval", "model", "mesh"]

for _name in COMMAND_MODULES:
    importlib.import_module(f"worldgen.commands.{_name}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a user's mistake ends in one line on stderr and exit code 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="worldgen", standalone_mode=False)
    except typer.Abort:
        print("worldgen: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as e:  # usage errors: unknown option, missing argument...
        print(f"worldgen: error: {e.format_message()} (see 'worldgen --help')", file=sys.stderr)
        return 2
    except WorldgenError as e:
        print(f"worldgen: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        print(f"worldgen: error: {e.strerror or e}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("worldgen: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
