"""Large result arrays on plain pages.

numpy asks the kernel for transparent huge pages on every array of 4 MiB or more. Where the kernel
must compact memory to find one (``defrag = madvise``, the common default), the first touch of a
fresh 64 MB array took 140-170 ms on the development VM, against 6-8 ms when free huge pages were
at hand and ~32 ms on plain 4 KiB pages either way. Results that the Hunyuan3D path and the
mesh inpaint allocate per call use plain pages, for a cost that does not depend on the state of
the machine's memory.
"""
from __future__ import annotations

import mmap

import numpy as np

_SMALL = 1 << 20  # bytes: below this, numpy's allocator (no huge pages, reuses freed blocks)


def plain_zeros(shape, dtype) -> np.ndarray:
    """A new zero-filled C-contiguous array of ``shape`` and ``dtype``. From 1 MiB up, a private
    anonymous mapping: zero without a memset, each 4 KiB page faulted in where first written (a
    result written sparsely leaves the rest untouched), copy-on-write in a forked child, unmapped
    when the array is freed. Smaller: ``np.zeros``."""
    shape = tuple(int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    if nbytes < _SMALL:
        return np.zeros(shape, dtype)
    mm = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(mm, dtype, count=count).reshape(shape)
