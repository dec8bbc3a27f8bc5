"""The engine's own error types: each message names the file, column, row or value and what to do."""


class VggtabError(Exception):
    """An error the user can act on. `str()` is a short paragraph fit to show as is."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class InputError(VggtabError):
    """A data file is missing, unreadable or holds data the engine cannot use."""


class ConfigError(VggtabError):
    """A setting (layers, LR, epochs, feature set …) is out of range or malformed."""


class TrainingDiverged(VggtabError):
    """A loss became NaN or infinite; the message carries the diagnosis."""


class StorageError(VggtabError):
    """Results or models could not be written or read safely."""


class Cancelled(Exception):
    """The user cancelled the run: not an error, so not a VggtabError."""
