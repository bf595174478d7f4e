"""The one user-facing error of the uota command line tools."""


class CommandError(Exception):
    """A failure the user can fix (missing folder, bad version, port in use, ...).

    `uota.__main__.main` catches it once and prints it as a single line,
    ``uota: <message>``, on stderr with exit status 1; never a traceback.
    """
