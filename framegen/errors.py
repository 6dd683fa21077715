"""framegen's error types: every failure a user can cause or fix is one of these.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``; nothing else escapes as a traceback.
"""


class FramegenError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""

    exit_code = 1


class UsageError(FramegenError):
    """A setting or option is out of range or inconsistent."""

    exit_code = 2


class AudioError(FramegenError):
    """The song file is missing, unreadable, empty, silent or otherwise unusable."""


class SongTooShortError(FramegenError):
    """The song cannot hold one training plus one validation example at the requested sizes."""


class RunError(FramegenError):
    """A run directory, its config or its checkpoints are missing, locked or inconsistent."""


class TrainingDiverged(FramegenError):
    """The loss or gradients became non-finite."""


class Interrupted(FramegenError):
    """Stopped by SIGINT/SIGTERM after saving; exit code follows the shell convention (128 + signal)."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class FramegenWarning(UserWarning):
    """Something the user should know that does not stop the command (a run that cannot be verified, a fallback
    to another checkpoint); the CLI prints each as one ``warning: ...`` line on stderr."""


class RunDamaged(RunError):
    """A file of a run does not match the checksum it was saved with, or cannot be read; ``reason`` names the file
    and what is wrong with it, for callers that word the next step themselves."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason
