"""Errors a user can act on.  Command-line front ends print these as one line, never as a traceback."""


class ProtophoneError(Exception):
    """Base class: the message names the problem and what to do about it."""


class PresetError(ProtophoneError):
    """A preset name or file that cannot be used."""


class ModelFileError(ProtophoneError):
    """A model file that is missing, corrupt or not a Protophone model."""


class AudioFileError(ProtophoneError):
    """An audio file that cannot be read or written."""


class UsageError(ProtophoneError):
    """Command-line inputs that cannot be used together, or at all."""


def one_line(error: Exception) -> str:
    """A YAML (or other) error on one line: PyYAML's messages quote the bad line over several."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is not None and problem:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(error).split())
