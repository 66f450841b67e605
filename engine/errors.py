"""Errors a user can act on.  Command-line front ends print these as one line, never as a traceback."""


class ProtophoneError(Exception):
    """Base class: the message names the problem and what to do about it."""


class PresetError(ProtophoneError):
    """A preset name or file that cannot be used."""


class ModelFileError(ProtophoneError):
    """A model file that is missing, corrupt or not a Protophone model."""


class AudioFileError(ProtophoneError):
    """An audio file that cannot be read or written."""
