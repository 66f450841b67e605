"""Single-producer/single-consumer block ring buffer for handing audio between threads.

The audio callback must never wait on a lock held by a slower thread, so the callback and the worker
exchange fixed-size blocks through this ring, which is synchronised by two index counters only:
the producer alone advances ``_written``, the consumer alone advances ``_read``.  The block is copied
into its slot *before* ``_written`` is advanced, so the consumer never sees a slot that is half
written.  In CPython each counter store is a single atomic rebinding under the GIL, which gives the
ordering this relies on; no ``threading.Lock`` or ``Condition`` is involved.

Storage is preallocated at construction, so ``push``/``pop_into`` do no allocation beyond what
NumPy's ``copyto`` needs, and each slot carries the sequence number of its block so that the consumer
can tell a block that arrived in time from one that arrived late.
"""

from __future__ import annotations

import numpy as np


class BlockRing:
    """Lock-free SPSC ring of fixed-shape float32 blocks, each tagged with a sequence number.

    Exactly one thread may call ``push`` and exactly one (other) thread may call ``peek_seq`` and
    ``pop_into``; ``available``/``free`` may be read from either side as a hint.
    """

    def __init__(self, capacity_blocks: int, block_shape: tuple[int, ...]) -> None:
        if capacity_blocks < 1:
            raise ValueError(f"capacity_blocks must be >= 1, got {capacity_blocks}")
        self.capacity = capacity_blocks
        self._slots = np.zeros((capacity_blocks, *block_shape), dtype=np.float32)
        self._seqs = np.zeros(capacity_blocks, dtype=np.int64)
        self._written = 0  # advanced by the producer only
        self._read = 0  # advanced by the consumer only

    def available(self) -> int:
        """Number of blocks the consumer can pop now."""
        return self._written - self._read

    def free(self) -> int:
        """Number of blocks the producer can push now."""
        return self.capacity - (self._written - self._read)

    def push(self, block: np.ndarray, seq: int) -> bool:
        """Copy ``block`` into the next slot; return False (and copy nothing) when the ring is full."""
        if self._written - self._read >= self.capacity:
            return False
        slot = self._written % self.capacity
        np.copyto(self._slots[slot], block)
        self._seqs[slot] = seq
        self._written += 1  # publish only after the data is in place
        return True

    def peek_seq(self) -> int | None:
        """Sequence number of the oldest unread block, or None when the ring is empty."""
        if self._written == self._read:
            return None
        return int(self._seqs[self._read % self.capacity])

    def pop_into(self, out: np.ndarray) -> int | None:
        """Copy the oldest block into ``out`` and return its sequence number; None when empty."""
        if self._written == self._read:
            return None
        slot = self._read % self.capacity
        np.copyto(out, self._slots[slot])
        seq = int(self._seqs[slot])
        self._read += 1  # release the slot only after the data is copied out
        return seq

    def drop(self) -> None:
        """Discard the oldest block (consumer side); a no-op when empty."""
        if self._written != self._read:
            self._read += 1
