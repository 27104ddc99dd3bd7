"""The one exception type that reaches a user as a single line.

Library code raises `ShelmError` for anything the user can fix (a bad id, a bad value, a run directory in
the way); the command line prints its message on one line and exits with status 2. Anything else is a bug
and keeps its traceback.
"""


class ShelmError(Exception):
    """A problem with the user's input: the message names the bad value and the fix."""
