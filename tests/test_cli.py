"""The `uota` command line: the command table, help, exit status and one-line errors.

Each command's own mistakes (a missing folder or file, a bad URL) are one-line errors in
its own test file: test_build.py, test_serve.py, test_pin.py, test_init.py.
"""

import os
import signal
import socket
import subprocess
import sys

import pytest
from support.fixtures_servers import run_uota, uota_command_env

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


# An error no command foresaw, met for real: the output goes to a full disk (/dev/full).
def run_uota_into_full_disk(*args, cwd):
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "uota", *map(str, args)], cwd=cwd, env=uota_command_env(),
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_unexpected_error_is_one_line_with_a_hint_and_status_1(tmp_path):
    result = run_uota_into_full_disk("init", "--url", "http://updates.example/", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "uota: unexpected error: OSError: [Errno 28] No space left on device"
        " (run with --debug to see the traceback)\n"
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [("--debug", "init"), ("init", "--debug")], ids=["before-command", "after-command"])
def test_debug_shows_the_traceback_of_an_unexpected_error(tmp_path, args):
    result = run_uota_into_full_disk(*args, "--url", "http://updates.example/", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert result.stderr.endswith("uota: unexpected error: OSError: [Errno 28] No space left on device\n")


def test_ctrl_c_is_status_130_and_no_traceback(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        process = subprocess.Popen(
            [sys.executable, "-m", "uota", "check", "http://127.0.0.1:{}/".format(silent.getsockname()[1])],
            cwd=tmp_path, env=uota_command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # as from a terminal: a suite started in the background inherits SIGINT ignored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            silent.settimeout(60)
            connection, _ = silent.accept()  # uota is waiting for `latest`
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
            connection.close()
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130
    assert stderr == ""
