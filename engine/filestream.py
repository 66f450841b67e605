"""A sound file through the streaming engine, disk to disk, in constant memory.

``Processor.process_file`` and the command line's file mode both go through :func:`stream_file`, so a
file gives the same output whichever way it is processed.  The file is read one block at a time, resampled
to the host rate by a streaming resampler where the rates differ, processed, and written block by block to
a temporary file that is renamed onto the output at the end (:mod:`engine.atomic`).  The output is aligned
with the input: the input is followed by ``tail`` samples of silence, the first ``latency`` samples of
output are dropped, and the output stops at the input's length.  An hour of audio takes the memory of a
few blocks, not of the hour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from engine.atomic import publish, temporary_beside
from engine.audiofile import clipped_samples, free_space, read_mono
from engine.errors import AudioFileError

#: Input samples read from disk at a time (at the file's rate): large enough that reading costs little.
READ_FRAMES = 1 << 15


@dataclass
class FileRun:
    """What :func:`stream_file` did."""

    heard: int = 0  # input samples (at the host rate) processed, the tail of silence not counted
    clipped_samples: int = 0  # output samples beyond full scale that the file's sample format clipped
    interrupted: bool = False  # stopped early by Ctrl-C (or SIGTERM where that raises KeyboardInterrupt)


class HostRateBlocks:
    """The file's samples at ``host_rate`` in blocks of exactly ``block_size``, then ``tail`` zeros, then
    nothing: ``next_block`` returns None."""

    def __init__(self, file: sf.SoundFile, host_rate: int, block_size: int, tail: int) -> None:
        self._file = file
        self._resampler = (None if file.samplerate == host_rate
                           else soxr.ResampleStream(file.samplerate, host_rate, 1, dtype="float32"))
        self._block = np.zeros(block_size, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._tail_left = tail
        self._file_done = False
        self.samples = 0  # host-rate samples of the file handed out so far

    def next_block(self) -> np.ndarray | None:
        """The next block (a view that the following call overwrites), or None when all is out."""
        while len(self._pending) < len(self._block) and not self._file_done:
            self._read_more()
        if len(self._pending) == 0 and self._tail_left == 0:
            return None
        take = min(len(self._pending), len(self._block))
        self._block[:take] = self._pending[:take]
        self._pending = self._pending[take:]
        self.samples += take
        silence = min(len(self._block) - take, self._tail_left)
        self._block[take:] = 0.0
        self._tail_left -= silence
        return self._block[: take + silence] if take + silence < len(self._block) else self._block

    def _read_more(self) -> None:
        chunk = read_mono(self._file, READ_FRAMES)
        self._file_done = len(chunk) < READ_FRAMES
        if self._resampler is not None:
            chunk = self._resampler.resample_chunk(chunk, last=self._file_done)
        self._pending = np.concatenate([self._pending, chunk])


class AlignedWriter:
    """Output blocks into a temporary file beside ``path``, the first ``latency`` samples dropped and none
    past ``write``'s ``limit``; ``publish`` renames it onto ``path``, ``abandon`` removes it."""

    def __init__(self, path: Path, sample_rate: int, subtype: str | None, latency: int) -> None:
        self.path = path
        self._subtype = subtype
        self._to_skip = latency
        self.written = 0
        self.clipped = 0
        self._temporary = temporary_beside(path)
        try:
            self._file = sf.SoundFile(str(self._temporary), "w", samplerate=sample_rate, channels=1, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as error:
            self._temporary.unlink(missing_ok=True)
            raise AudioFileError(f"cannot write {path} ({error}); check the folder and the extension") from None

    def write(self, block: np.ndarray, limit: int) -> None:
        """Append ``block``, keeping the file at most ``limit`` samples long (the input's length so far)."""
        skip = min(self._to_skip, len(block))
        self._to_skip -= skip
        block = block[skip : skip + max(0, limit - self.written)]
        if not len(block):
            return
        try:
            self._file.write(block)
        except (sf.LibsndfileError, RuntimeError, OSError, AssertionError) as error:  # soundfile asserts on a
            self.abandon()  # short write: the disk is full
            raise AudioFileError(f"cannot write {self.path} ({error or 'disk full?'}{free_space(self.path)}); "
                                 "free some space or choose another folder (any earlier file there is untouched)"
                                 ) from None
        self.written += len(block)
        self.clipped += clipped_samples(block, self.path, self._subtype)

    def publish(self) -> None:
        try:
            self._file.close()
            publish(self._temporary, self.path)
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            self.abandon()
            raise AudioFileError(f"cannot write {self.path} ({error}{free_space(self.path)})") from None

    def abandon(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._temporary.unlink(missing_ok=True)


def stream_file(process: Callable[[np.ndarray], np.ndarray], file: sf.SoundFile, host_rate: int, block_size: int,
                latency: int, tail: int, out_path: Path | None = None, subtype: str | None = None,
                after_block: Callable[[FileRun], None] | None = None) -> FileRun:
    """Run the open ``file`` (:func:`engine.audiofile.open_audio`) through ``process`` (a prepared engine's)
    block by block; write the aligned output to ``out_path`` if given.  ``after_block`` sees the run after
    each block (display, pacing); a KeyboardInterrupt there or in ``process`` ends the run early, keeping
    what was processed."""
    run = FileRun()
    blocks = HostRateBlocks(file, host_rate, block_size, tail)
    writer = None if out_path is None else AlignedWriter(Path(out_path), host_rate, subtype, latency)
    try:
        while (block := blocks.next_block()) is not None:
            output = process(block)
            run.heard = blocks.samples
            if writer is not None:
                writer.write(output, limit=blocks.samples)
            if after_block is not None:
                after_block(run)
    except KeyboardInterrupt:
        run.interrupted = True
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    if writer is not None:
        writer.publish()
        run.clipped_samples = writer.clipped
    return run
