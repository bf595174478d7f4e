"""The `uota` command: a table of subcommands, one module per subcommand.

To add a command, write a module with a handler ``run(args) -> int | None``
(its docstring's first line is the command's help) and a parser factory
``add_arguments(parser)``, then add one line to `COMMANDS`.
"""

import argparse
import sys

from . import build, check, demo, init, pin, serve, sign, simulate
from .errors import CommandError

# name -> (handler, argparse-configuring function), as in mpremote's table.
COMMANDS = {
    "build": (build.run, build.add_arguments),
    "serve": (serve.run, serve.add_arguments),
    "pin": (pin.run, pin.add_arguments),
    "keygen": (sign.run_keygen, sign.add_keygen_arguments),
    "sign": (sign.run, sign.add_arguments),
    "init": (init.run, init.add_arguments),
    "check": (check.run, check.add_arguments),
    "simulate": (simulate.run, simulate.add_arguments),
    "demo": (demo.run, demo.add_arguments),
}


def _summary(handler):
    return (handler.__doc__ or "").strip().splitlines()[0]


def _make_parser():
    parser = argparse.ArgumentParser(
        prog="uota",
        description="Publisher tools for uota, the over-the-air updater for MicroPython devices.",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (handler, add_arguments) in COMMANDS.items():
        summary = _summary(handler)
        command_parser = subcommands.add_parser(name, help=summary, description=summary)
        add_arguments(command_parser)
        command_parser.set_defaults(handler=handler)
    return parser


def main(argv=None) -> int:
    """Run one uota command; return its exit status (0 ok, 1 error, 2 usage)."""
    try:
        args = _make_parser().parse_args(argv)
    except SystemExit as parser_exit:
        # argparse exits after --help or a usage error; callers get a status.
        return parser_exit.code
    try:
        return args.handler(args) or 0
    except CommandError as error:
        print("uota: {}".format(error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # `uota serve` runs until Ctrl-C: that is how it ends, not a crash.
        return 130


def entrypoint():
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    entrypoint()
