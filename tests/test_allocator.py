"""training.allocator: after keep_freed_memory, a freed large block is reused without faulting its pages in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Minor page faults of four blocks of 48 MB (above glibc's largest dynamic mmap threshold, 32 MB), each
#: allocated, written and freed in turn as a training batch's tensors are.
PAGE_FAULTS_OF_REPEATED_BLOCKS = """
import ctypes, resource, sys
from training.allocator import keep_freed_memory
if sys.argv[1] == "keep" and not keep_freed_memory():
    sys.exit(3)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, (ctypes.c_size_t,), (ctypes.c_void_p,)
def block():
    address = libc.malloc(48 << 20)
    ctypes.memset(address, 1, 48 << 20)
    libc.free(address)
block()  # the first block faults its pages in whatever the setting
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    block()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(setting: str) -> int:
    done = subprocess.run([sys.executable, "-c", PAGE_FAULTS_OF_REPEATED_BLOCKS, setting],
                          check=False, capture_output=True, text=True, timeout=120)
    if done.returncode == 3:
        pytest.skip("not glibc: keep_freed_memory has nothing to set")
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    pages_per_block = (48 << 20) // 4096
    assert page_faults("default") > 3 * pages_per_block  # glibc hands each block back to the kernel
    assert page_faults("keep") < pages_per_block // 8
