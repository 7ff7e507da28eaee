"""User-facing errors.

Anything a user can cause (a missing file, a bad checkpoint, a wrong flag) is raised as a
``BlendGANError`` whose message is one line naming the file and the fix. Commands print that
line and exit; they never show a traceback for these.
"""


class BlendGANError(Exception):
    """A problem the user can fix; ``str(err)`` is the one-line message shown to them."""

    exit_code = 2


class UsageError(BlendGANError):
    """Bad flags or a missing required file (weights, input folder): exit status 2."""

    exit_code = 2


class CheckpointError(BlendGANError):
    """A checkpoint that is missing, corrupt, unsafe, of the wrong kind or size."""

    exit_code = 2


class InputImageError(BlendGANError):
    """One input image could not be used; a folder run reports it and goes on."""

    exit_code = 1
