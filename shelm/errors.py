"""The one exception type that reaches a user as a single line.

Library code raises `ShelmError` for anything the user can fix (a bad id, a bad value, a run directory in
the way); the command line prints its message on one line and exits with status 2. Anything else is a bug
and keeps its traceback.
"""


class ShelmError(Exception):
    """A problem with the user's input: the message names the bad value and the fix."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of a third-party exception's message (or its type), to quote inside a one-line error."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
