"""Record what the engine plays to a sound file without file I/O in the audio callback.

The callback copies each output block into a lock-free ring (:class:`realtime.ringbuffer.BlockRing`);
a writer thread drains it into a ``soundfile.SoundFile``.  ``close()`` stops the thread only after the
ring is empty and then closes the file, so a run ended by Ctrl-C still leaves a complete, valid file.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import AudioFileError
from realtime.ringbuffer import BlockRing

#: Seconds of audio the ring holds: the writer may stall this long (a slow disk) before blocks drop.
RING_SECONDS = 4.0
#: How often the writer wakes: rarely enough that it seldom competes with the callback for the GIL.
POLL_S = 0.05


class Recorder:
    """Mono float32 recorder fed with fixed-size blocks from the audio thread."""

    def __init__(self, path: str | Path, sample_rate: int, block_size: int) -> None:
        self.path = Path(path)
        subtype = "FLOAT" if self.path.suffix.lower() == ".wav" else None  # WAV keeps the engine's floats
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(str(self.path), "w", samplerate=sample_rate, channels=1, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as error:
            raise AudioFileError(f"cannot write {self.path} ({error}); check the folder and the extension") from None
        self.block_size = block_size
        self.dropped_blocks = 0
        self.frames_written = 0
        self._ring = BlockRing(max(4, int(RING_SECONDS * sample_rate / block_size)), (block_size,))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain_loop, name="protophone-recorder", daemon=True)
        self._thread.start()

    def push(self, block: np.ndarray) -> None:
        """Audio thread: queue one block (a copy into preallocated storage); counts it if the ring is full."""
        if not self._ring.push(block, 0):
            self.dropped_blocks += 1

    def close(self) -> None:
        """Write everything queued, then close the file; idempotent."""
        if self._file.closed:
            return
        self._stop.set()
        self._thread.join()
        self._drain()
        self._file.close()

    def _drain(self) -> None:
        block = np.zeros(self.block_size, dtype=np.float32)
        while self._ring.pop_into(block) is not None:
            self._file.write(block)
            self.frames_written += len(block)

    def _drain_loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self._drain()
