"""Record what the engine plays to a sound file without file I/O in the audio callback.

The callback copies each output block into a lock-free ring (:class:`realtime.ringbuffer.BlockRing`);
a writer thread drains it into a ``soundfile.SoundFile``.  ``close()`` stops the thread only after the
ring is empty and then closes the file, so a run ended by Ctrl-C still leaves a complete, valid file.

Nothing is lost on the way: the take is written to a hidden temporary file beside ``path`` and renamed
onto it by ``close()``, so an earlier take at ``path`` survives until the new one is whole.  The writer
flushes the file (which rewrites its header) about once a second, so even a killed run leaves a valid
file of all but the last second.  A write that fails (a full disk) stops the writer, keeps what was
written and is reported in ``error``; the run reads it and ends.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.atomic import publish, temporary_beside
from engine.errors import AudioFileError
from realtime.ringbuffer import BlockRing

#: Seconds of audio the ring holds: the writer may stall this long (a slow disk) before blocks drop.
RING_SECONDS = 4.0
#: How often the writer wakes: rarely enough that it seldom competes with the callback for the GIL.
POLL_S = 0.05
#: How often the writer flushes the file, which also rewrites the header: the most a kill can cost.
FLUSH_S = 1.0


class Recorder:
    """Mono float32 recorder fed with fixed-size blocks from the audio thread."""

    def __init__(self, path: str | Path, sample_rate: int, block_size: int) -> None:
        self.path = Path(path)
        subtype = "FLOAT" if self.path.suffix.lower() == ".wav" else None  # WAV keeps the engine's floats
        try:
            self.partial_path = temporary_beside(self.path)
            self._file = sf.SoundFile(str(self.partial_path), "w", samplerate=sample_rate, channels=1,
                                      subtype=subtype)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as error:
            raise AudioFileError(f"cannot write {self.path} ({error}); check the folder and the extension") from None
        self.block_size = block_size
        self.sample_rate = sample_rate
        #: Blocks not in the file: the ring was full (a stalled disk), or writing had stopped on an error.
        self.dropped_blocks = 0
        self.frames_written = 0
        #: Why writing stopped (e.g. the disk is full), or None while it goes on.
        self.error: str | None = None
        self._flushed_at = time.monotonic()
        self._ring = BlockRing(max(4, int(RING_SECONDS * sample_rate / block_size)), (block_size,))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain_loop, name="protophone-recorder", daemon=True)
        self._thread.start()

    def push(self, block: np.ndarray) -> None:
        """Audio thread: queue one block (a copy into preallocated storage); counts it if the ring is full."""
        if not self._ring.push(block, 0):
            self.dropped_blocks += 1

    def close(self) -> None:
        """Write everything queued, close the file and rename it onto ``path``; idempotent.  After a write
        error the part written before it is kept."""
        if self._file.closed:
            return
        self._stop.set()
        self._thread.join()
        self._drain()
        try:
            self._file.close()
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            self.error = self.error or str(error)
        publish(self.partial_path, self.path)
        if self.error is not None:  # a failed write may have stored part of a block: count what the file holds
            self.frames_written = sf.info(str(self.path)).frames

    def _drain(self) -> None:
        block = np.zeros(self.block_size, dtype=np.float32)
        while self._ring.pop_into(block) is not None:
            if self.error is not None:
                self.dropped_blocks += 1
                continue
            try:
                self._file.write(block)
                if time.monotonic() - self._flushed_at >= FLUSH_S:
                    self._file.flush()
                    self._flushed_at = time.monotonic()
            except (sf.LibsndfileError, RuntimeError, OSError, AssertionError) as error:  # soundfile asserts
                reason = str(error) or "only part of a block was written"  # a short write: the disk is full
                self.error = f"{reason} after {self.frames_written / self.sample_rate:.1f} s"
                self.dropped_blocks += 1
                continue
            self.frames_written += len(block)

    def _drain_loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self._drain()
