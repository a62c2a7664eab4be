"""The CPU backend's memory guard (render_npu/backends/cpu.py, docs/robustness.md): a call that cannot
fit raises MemoryError with the numbers *before* anything is allocated. Fast: the available-memory
probe is monkeypatched, nothing large is ever allocated."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import render_npu
from render_npu import _ext
from render_npu.backends import cpu as cpu_backend



def test_estimate_counts_outputs_and_faces():
    small = cpu_backend.estimate_memory(1, 0, 1, 1)
    assert 0 < small < 64 * 2 ** 20
    # outputs: 20 bytes per pixel per batch item
    assert cpu_backend.estimate_memory(3, 0, 1024, 512) - small >= 3 * 1024 * 512 * 20
    # working memory grows with the faces
    assert cpu_backend.estimate_memory(1, 10_000_000, 1, 1) - small >= 10_000_000 * 88
    # the huge-scene benchmarks (benchmarks/bench_huge.py) fit the stated bounds
    assert cpu_backend.estimate_memory(1, 10_000_000, 4096, 4096, 8) < 1.5 * 2 ** 30
    assert cpu_backend.estimate_memory(1, 1_000_000, 16384, 16384, 8) < 5.5 * 2 ** 30


def test_available_memory_probe_is_sane():
    have = cpu_backend.available_memory()
    assert have is None or 0 <= have < 2 ** 50


def test_check_memory_raises_with_numbers(monkeypatch):
    monkeypatch.setattr(cpu_backend, "available_memory", lambda: 100 * 2 ** 20)
    with pytest.raises(MemoryError) as info:
        cpu_backend.check_memory(4, 1_000_000, 16384, 16384, 2)
    msg = str(info.value)
    assert "16384x16384" in msg and "1,000,000" in msg and "B=4" in msg and "GiB" in msg
    assert "batch" in msg and "resolution" in msg  # says what to reduce
    assert cpu_backend.check_memory(1, 10, 8, 8, 1) > 0  # small calls pass
    monkeypatch.setattr(cpu_backend, "available_memory", lambda: None)  # unknown: no guard
    assert cpu_backend.check_memory(64, 2 ** 24, 16384, 16384, 8) > 2 ** 38


@pytest.mark.compiled("rasterize")
def test_rasterize_refuses_before_allocating(monkeypatch):
    """Through the public API: MemoryError, and neither the outputs nor the compiled call happen."""
    monkeypatch.setattr(cpu_backend, "available_memory", lambda: 64 * 2 ** 20)
    allocations = []
    real_empty = torch.empty

    def spy_empty(*args, **kwargs):
        allocations.append(args)
        return real_empty(*args, **kwargs)

    class NoCall:
        def __getattr__(self, name):
            raise AssertionError(f"compiled code reached (_C.{name}) despite the memory guard")

    monkeypatch.setattr(cpu_backend.torch, "empty", spy_empty)
    monkeypatch.setattr(_ext, "get", lambda: NoCall())
    pos = torch.tensor([[-1.0, -1.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    faces = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    with pytest.raises(MemoryError, match="16384x16384"):
        render_npu.rasterize(16384, faces, pos.expand(8, 3, 4), backend="cpu", num_threads=2)
    assert not allocations


def test_plain_zeros_arrays():
    """render_npu._memory.plain_zeros: zero-filled, writable, C-contiguous arrays of the asked shape
    and dtype, small ones from numpy and large ones (>= 1 MiB) from a private anonymous mapping
    that torch can share; freed arrays do not disturb live ones."""
    from render_npu._memory import plain_zeros

    for shape, dtype in (((3,), np.float32), ((0, 4), np.int64), ((512, 1024), np.float32), ((2, 1 << 20), np.uint8),
                         (1 << 18, np.int64)):
        a = plain_zeros(shape, dtype)
        want = shape if isinstance(shape, tuple) else (shape,)
        assert a.shape == want and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
        assert not a.any()
        if a.size:
            a.reshape(-1)[-1] = 7
            t = torch.from_numpy(a)
            assert int(t.reshape(-1)[-1]) == 7 and int(t.sum()) == 7
    keep = plain_zeros((1 << 20,), np.float32)
    keep[::4096] = 1
    for _ in range(3):
        tmp = plain_zeros((1 << 20,), np.float32)
        tmp[:] = 5
        del tmp
    assert keep.sum() == 256
    from render_npu._memory import plain_empty

    e = plain_empty((300, 7), np.int64)
    assert e.shape == (300, 7) and e.dtype == np.int64 and e.flags.c_contiguous and e.flags.writeable
