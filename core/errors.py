"""Errors that reach people. Each message says what went wrong, where, and what to do."""


class PlaygroundError(Exception):
    """Base class: str(error) is a complete, user-facing message."""


class ConfigError(PlaygroundError):
    """A setting is out of range or inconsistent."""


class CorpusError(PlaygroundError):
    """A corpus cannot be read or is unusable for training."""


class DownloadError(CorpusError):
    """A named corpus could not be fetched or failed verification."""


class DeviceError(PlaygroundError):
    """A device was asked for that does not exist here."""


class CheckpointError(PlaygroundError):
    """A checkpoint file is missing, damaged, foreign or does not fit."""


class SamplingError(PlaygroundError):
    """Sampling settings or prime text are unusable."""


class TraceError(PlaygroundError):
    """A trace cannot be made: unsupported model, unusable text, or a bad analysis request."""


class RunFolderError(PlaygroundError):
    """A run folder cannot be created or written, or its name is unusable."""


class RunBusyError(RunFolderError):
    """Another process is writing the run folder (it holds the run's lock)."""
