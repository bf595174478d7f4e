"""The `uota` command: a table of subcommands, one module per subcommand.

To add a command, write a module with a handler ``run(args) -> int | None``
(its docstring's first line is the command's help) and a parser factory
``add_arguments(parser)``, then add one line to `COMMANDS`.
"""

import argparse
import sys
import traceback

from . import build, check, demo, fleet, init, pin, publish, rollout, serve, sign, simulate
from .errors import CommandError

# name -> (handler, argparse-configuring function), as in mpremote's table.
COMMANDS = {
    "build": (build.run, build.add_arguments),
    "serve": (serve.run, serve.add_arguments),
    "pin": (pin.run, pin.add_arguments),
    "keygen": (sign.run_keygen, sign.add_keygen_arguments),
    "sign": (sign.run, sign.add_arguments),
    "rollout": (rollout.run, rollout.add_arguments),
    "publish": (publish.run, publish.add_arguments),
    "init": (init.run, init.add_arguments),
    "check": (check.run, check.add_arguments),
    "simulate": (simulate.run, simulate.add_arguments),
    "fleet": (fleet.run, fleet.add_arguments),
    "demo": (demo.run, demo.add_arguments),
}


def _summary(handler):
    return (handler.__doc__ or "").strip().splitlines()[0]


def _make_parser():
    parser = argparse.ArgumentParser(
        prog="uota",
        description="Publisher tools for uota, the over-the-air updater for MicroPython devices.",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (handler, add_arguments) in COMMANDS.items():
        summary = _summary(handler)
        command_parser = subcommands.add_parser(name, help=summary, description=summary)
        # Also after the command (`uota init --debug`); SUPPRESS keeps one given before it.
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                    help="show the traceback of an unexpected error")
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
        status = args.handler(args) or 0
        sys.stdout.flush()  # a failed write of the output (a full disk) is an error here, not at exit
        return status
    except CommandError as error:
        print("uota: {}".format(error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # `uota serve` runs until Ctrl-C: that is how it ends, not a crash.
        return 130
    except Exception as error:  # a bug, or a failure no command foresaw: one line, no traceback
        if args.debug:
            traceback.print_exc()
        print("uota: unexpected error: {}{}".format(
            _describe(error), "" if args.debug else " (run with --debug to see the traceback)"), file=sys.stderr)
        return 1


def _describe(error):
    text = str(error)
    return "{}: {}".format(type(error).__name__, text) if text else type(error).__name__


def entrypoint():
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    entrypoint()
