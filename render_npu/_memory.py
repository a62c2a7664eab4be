"""Result arrays on plain pages.

numpy asks the kernel for transparent huge pages on every array of 4 MiB or more. Where the kernel
must compact memory to find one (``defrag = madvise``, the common default), the first touch of a
fresh 64 MB array took 140-170 ms on the development VM, against 6-8 ms when free huge pages were
at hand and ~32 ms on plain 4 KiB pages. Results that the Hunyuan3D path and the mesh inpaint
allocate per call use plain pages instead, for a cost that does not depend on the state of the
machine's memory: :func:`plain_empty` for results written whole (the C allocator reuses freed
blocks up to 32 MB without new page faults), :func:`plain_zeros` for results written sparsely.
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


def plain_empty(shape, dtype) -> np.ndarray:
    """A new uninitialised C-contiguous array from torch's CPU allocator (malloc: 4 KiB pages, no
    huge-page request; glibc hands freed blocks of up to 32 MB back without new page faults), for
    a result that is written whole."""
    import torch

    shape = tuple(int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    return torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype).numpy()
