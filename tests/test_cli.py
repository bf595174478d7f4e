"""The `uota` command line: the command table, help, exit status and one-line errors.

Each command's own mistakes (a missing folder or file, a bad URL) are one-line errors in
its own test file: test_build.py, test_serve.py, test_pin.py, test_init.py.
"""

from support.fixtures_servers import run_uota

from uota import __main__ as cli
from uota.errors import CommandError


def test_help_lists_every_command_in_the_table():
    result = run_uota("--help")
    assert result.returncode == 0
    for name in cli.COMMANDS:
        assert name in result.stdout


def test_missing_command_is_a_usage_error():
    result = run_uota()
    assert result.returncode == 2
    assert "usage: uota" in result.stderr


def test_main_returns_the_status_instead_of_exiting(capsys):
    assert cli.main(["--help"]) == 0
    assert cli.main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_command_added_to_the_table_is_dispatched(monkeypatch, capsys):
    def run_hello(args):
        """Say hello."""
        print("hello", args.who)

    def add_hello_arguments(parser):
        parser.add_argument("who")

    monkeypatch.setitem(cli.COMMANDS, "hello", (run_hello, add_hello_arguments))
    assert cli.main(["hello", "board"]) == 0
    assert capsys.readouterr().out == "hello board\n"


def test_command_error_is_one_line_on_stderr_with_status_1(monkeypatch, capsys):
    def run_failing(args):
        """Fail."""
        raise CommandError("the board is on fire")

    monkeypatch.setitem(cli.COMMANDS, "fail", (run_failing, lambda parser: None))
    assert cli.main(["fail"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "uota: the board is on fire\n")
