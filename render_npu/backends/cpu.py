"""Adapter for the compiled C++ backend (csrc/rasterize): torch tensors <-> numpy views, no copies."""
from __future__ import annotations

import os
import resource
from typing import Optional

import numpy as np
import torch

from .. import _ext


def status():
    """(available, reason): the compiled module ``render_npu._C`` loads."""
    return (True, "") if _ext.get() is not None else (False, _ext.reason())


def rasterize(inp, num_threads: Optional[int] = None, out=None, out_zeroed: bool = False, **_options):
    """RasterInputs (CPU tensors) -> (rast [B,H,W,4], depth [B,H,W]); ``num_threads`` defaults to
    ``torch.get_num_threads()``; ``out``: validated (rast, depth) buffers to write into;
    ``out_zeroed``: they hold zeros already (only covered pixels are written). The GIL is released
    while the C++ code runs."""
    ext = _ext.get()
    if num_threads is None:
        num_threads = torch.get_num_threads()
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
    B = inp.pos.shape[0]
    if out is None:
        check_memory(B, inp.faces.shape[0], inp.height, inp.width, num_threads)
        # numpy-backed outputs: numpy asks the kernel for transparent huge pages on large arrays,
        # so first touch costs ~2x less than torch.empty's 4 KiB page faults (80 MB at 2048^2)
        rast = torch.from_numpy(np.empty((B, inp.height, inp.width, 4), np.float32))
        depth = torch.from_numpy(np.empty((B, inp.height, inp.width), np.float32))
    else:
        check_memory(0, inp.faces.shape[0], inp.height, inp.width, num_threads)
        rast, depth = out
    ext.rasterize(inp.pos.numpy(), inp.faces.numpy(), inp.height, inp.width, inp.viewport == "opengl",
                  inp.cull_backfaces, num_threads, rast.numpy(), depth.numpy(),
                  zero_filled=out is not None and out_zeroed)
    return rast, depth


# ---------------------------------------------------------------------------------------------
# Memory guard (docs/robustness.md): estimate what a call needs from (B, F, H, W) before anything
# is allocated, and refuse with a MemoryError -- not an abort or the OOM killer halfway through.
# Byte costs, from what csrc/rasterize allocates (rasterize_cpu.h, setup.h, tile.h):

OUTPUT_BYTES_PER_PIXEL = 20  # rast float32 x4 + depth float32, per batch item (allocated here)
PIECE_BYTES = 72  # per face: Piece 64 (one cache line) + TileSpan 8
BIN_BYTES_PER_FACE = 16  # 4-byte bin entries, up to 4 per small face (a face straddling tile borders)
TILE_SIDE = 64  # pixels (csrc/rasterize/setup.h kTileShift)
TILE_BYTES = 8  # per tile per thread: int64 bin counts (+ 8 per tile for the bin starts)
THREAD_BYTES = 320 * 1024  # per thread: 32 KiB tile buffer, 128 KiB resolve cache, bookkeeping
SLACK_BYTES = 16 * 2 ** 20  # fixed overhead (allocator, small vectors)


def estimate_memory(batch: int, num_faces: int, height: int, width: int, num_threads: int = 1) -> int:
    """Bytes one ``rasterize`` call on the CPU backend needs on top of its inputs: the outputs
    (``batch * height * width * 20``) plus the C++ working memory, which is reused across batch
    items (piece records and bins ~ ``88 * num_faces``, per-tile counters ~ ``8 * (threads + 1)``
    per 64x64 tile). Typical scenes (faces covering a few tiles each); a scene of many
    screen-filling triangles needs more bin memory (up to 4 bytes per face per 512x512 block)."""
    tiles = -(-height // TILE_SIDE) * -(-width // TILE_SIDE)
    outputs = batch * height * width * OUTPUT_BYTES_PER_PIXEL
    working = (num_faces * (PIECE_BYTES + BIN_BYTES_PER_FACE) + tiles * TILE_BYTES * (num_threads + 1)
               + num_threads * THREAD_BYTES + SLACK_BYTES)
    return outputs + working


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> Optional[int]:
    """Bytes this process can still allocate, or None when unknown: the smallest of
    /proc/meminfo's MemAvailable, the cgroup (v2 or v1) limit minus current usage, and the
    address-space rlimit minus the current virtual size."""
    limits = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    cgroup = ""
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                if line.startswith("0::"):
                    cgroup = line[3:].strip().lstrip("/")
    except OSError:
        pass
    for base in (os.path.join("/sys/fs/cgroup", cgroup), "/sys/fs/cgroup"):
        limit, usage = _read_int(os.path.join(base, "memory.max")), _read_int(os.path.join(base, "memory.current"))
        if limit is not None and usage is not None:
            limits.append(limit - usage)
            break
    else:
        limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        usage = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")
        if limit is not None and usage is not None and limit < 2 ** 60:
            limits.append(limit - usage)
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/status") as fh:
                vm = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:"))
            limits.append(soft - vm)
    except (OSError, ValueError, StopIteration):
        pass
    return max(0, min(limits)) if limits else None


def check_memory(batch: int, num_faces: int, height: int, width: int, num_threads: int = 1) -> int:
    """Raise MemoryError, before anything is allocated, when :func:`estimate_memory` exceeds
    :func:`available_memory`; returns the estimate (bytes) otherwise."""
    need = estimate_memory(batch, num_faces, height, width, num_threads)
    have = available_memory()
    if have is not None and need > have:
        gib = 2 ** 30
        outputs = batch * height * width * OUTPUT_BYTES_PER_PIXEL
        raise MemoryError(
            f"rasterize (cpu backend): B={batch}, F={num_faces:,} faces at {height}x{width} needs about "
            f"{need / gib:.2f} GiB ({outputs / gib:.2f} GiB of outputs: B*H*W*20 bytes; "
            f"{(need - outputs) / gib:.2f} GiB of working memory: ~88 bytes per face) but only "
            f"{have / gib:.2f} GiB is available. Render fewer images per call (smaller batch), a lower "
            f"resolution, or fewer faces; nothing was allocated.")
    return need
