"""The one exception type that the CLI turns into a one-line error and a non-zero exit."""


class MusicbenchError(Exception):
    """A user-facing error: the message says what is wrong, where, and how to fix it."""
