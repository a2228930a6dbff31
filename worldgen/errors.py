"""The exceptions worldgen raises for a user's mistake.

The CLI turns any `WorldgenError` into one line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""


class WorldgenError(Exception):
    """Base class: bad input that the user can fix."""


class InvalidGaussiansError(WorldgenError, ValueError):
    """A `Gaussians` whose fields have the wrong shape, dtype or values."""


class FormatError(WorldgenError, ValueError):
    """A file that cannot be read or written in the format its name asks for."""


class UsageError(WorldgenError, ValueError):
    """An argument that makes no sense (an empty prompt, a zero image size...)."""
