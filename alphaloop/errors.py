"""User-facing errors: the CLI prints their message and exits with code 2, never a traceback."""


class UserError(Exception):
    """A mistake in what the user asked for (recipe, flag, path), explained in the message."""


class CorruptCheckpointError(UserError):
    """A checkpoint whose files are missing or whose checksums do not match its manifest."""
