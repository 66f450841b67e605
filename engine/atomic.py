"""Files written whole or not at all, and outputs that never overwrite their inputs.

Every file the project writes goes to a temporary name in the destination folder and is renamed over
the destination only once it is complete.  A rename within one folder is atomic on POSIX, so a reader,
a crash, a kill or a full disk leaves either the previous file or the new one, never a part of either.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from engine.errors import ProtophoneError

#: The process's umask, read once: ``mkstemp`` creates files readable by their owner only, and a
#: finished output should get the permissions a plain ``open`` would have given it.
_UMASK = os.umask(0)
os.umask(_UMASK)


class OutputPathError(ProtophoneError):
    """An output path that names one of the run's inputs, or that cannot be written."""


def temporary_beside(path: str | Path) -> Path:
    """A new, empty, hidden file in ``path``'s folder (made if needed) to write ``path``'s content to.

    It keeps ``path``'s extension, so writers that choose a format by extension (soundfile) write the
    right one; its leading dot keeps it out of folder listings and globs such as ``*.wav``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}")
    os.close(handle)
    return Path(name)


def publish(temporary: Path, path: str | Path) -> None:
    """Rename the finished ``temporary`` onto ``path`` (atomically), with the permissions a plain ``open``
    would have given it."""
    os.chmod(temporary, 0o666 & ~_UMASK)
    os.replace(temporary, path)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (:func:`temporary_beside`); on a clean exit it is
    renamed over ``path``, on an exception it is removed and ``path`` is left as it was."""
    temporary = temporary_beside(path)
    try:
        yield temporary
        publish(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def refuse_overwriting(output: str | Path, inputs: list[str | Path]) -> None:
    """Raise :class:`OutputPathError` when ``output`` is, or links to, one of ``inputs``: checked before
    any work, so a recording is never replaced by its own processed copy."""
    output = Path(output)
    for given in inputs:
        source = Path(given)
        same = output.exists() and source.exists() and os.path.samefile(output, source)
        if same or output.resolve() == source.resolve():
            raise OutputPathError(f"the output {output} is the input {source}; choose another output file "
                                 "(Protophone never replaces its input)")


def check_output(output: str | Path, inputs: Sequence[str | Path] = ()) -> None:
    """Check, before any work, that ``output`` names none of ``inputs``, is not a folder, and lies in a
    folder that exists or can be made and that this process may write to (else :class:`OutputPathError`)."""
    output = Path(output)
    refuse_overwriting(output, list(inputs))
    if output.is_dir():
        raise OutputPathError(f"the output {output} is a folder; give a file name, e.g. {output / 'out.wav'}")
    folder = next((parent for parent in output.absolute().parents if parent.exists()), Path("/"))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {output}: {folder} is not a writable folder; choose another output")
