"""torch's intra-op threads while render_npu's own threads run torch ops on the CPU.

torch's intra-op parallelism splits each op over an OpenMP team whose threads meet at a barrier
at the end of every op. Where render_npu already keeps the cores busy with threads of its own
(chunk workers, view pools), or runs many small ops, those teams only add waiting: when another
process keeps the cores busy, a descheduled team thread makes every op wait a scheduler time
slice (measured: the torch backend at 200k faces, 1024², 1.2-18 s per call with 2 intra-op
threads beside two busy loops against 0.5-2.6 s with one; a 1 ms face-normal computation took
70 ms). Elementwise ops, gathers, index_copy_ and index_add_ give the same bits for any thread
count, so no result changes. The setting is process-wide (torch has no per-thread one), so
nested and concurrent users share it: the first in saves it, the last out restores it.
"""
from __future__ import annotations

import contextlib
import threading

import torch

_lock = threading.Lock()
_depth = 0
_saved = 0


@contextlib.contextmanager
def split_intra_op_threads(workers: int, device):
    """While ``workers`` threads of ours run torch ops on ``device``, give torch
    ``max(1, threads // workers)`` intra-op threads (CPU only; no change for ``workers <= 1`` or
    other devices), restored when the last nested or concurrent user leaves."""
    global _depth, _saved
    if torch.device(device).type != "cpu" or workers <= 1:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = torch.get_num_threads()
            torch.set_num_threads(max(1, _saved // workers))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                torch.set_num_threads(_saved)


def one_intra_op_thread(device):
    """:func:`split_intra_op_threads` with the caller's thread count as the workers: one intra-op
    thread on the CPU while it lasts."""
    return split_intra_op_threads(torch.get_num_threads(), device)
