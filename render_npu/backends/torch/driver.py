"""Torch backend driver: the chunk loops, the visibility merge and the entry points
(:func:`rasterize`, :func:`coverage_counts`)."""
from __future__ import annotations

import contextlib
from typing import Dict, NamedTuple, Optional, Tuple

import torch

from ...resolve import resolve_ as resolve_parent_
from .raster import _block_stamps, _raster_buffers, _raster_chunk, _resolve_chunk
from .setup import (_EMPTY_BELOW, _I64_MAX, _I_B, _I_C, _NI_RASTER, _NR_RASTER, _R_C, _R_INVAREA, _STAMP_SIZES,
                    _UNCOVERED_BIT, STATIC_STAMP_SIZE, _check_options, _chunks, _Chunks, _cols, _Pieces, _setup)

# ----------------------------------------------------------------------------- driver

_compiled: Dict[str, object] = {}


def _maybe_compiled(name: str, fn, compile_):
    if not compile_:
        return fn
    backend = compile_ if isinstance(compile_, str) else "inductor"
    key = f"{name}:{backend}"
    if key not in _compiled:
        _compiled[key] = torch.compile(fn, fullgraph=True, dynamic=False, backend=backend)
    return _compiled[key]


def _filled(shape: Tuple[int, ...], value, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.full(shape, value)``; on CPU backed by a numpy array (outputs and the key buffer,
    made once per call outside the loops): numpy asks the kernel for transparent huge pages on
    large arrays (and ``np.zeros`` gets lazily zeroed pages), so first touch of these tens of MB
    costs less than torch's 4 KiB page faults plus fill (allocation and write-back of the outputs
    measured 26 ms instead of 36 ms per call at 2048²).
    Any other device: a plain torch factory on that device."""
    numel = 1
    for d in shape:
        numel *= d
    if device.type != "cpu" or numel == 0:
        return torch.full(shape, value, dtype=dtype, device=device)
    import numpy as np
    np_dtype = {torch.float32: np.float32, torch.int64: np.int64, torch.int32: np.int32}[dtype]
    arr = np.zeros(numel, np_dtype) if value == 0 else np.full(numel, value, np_dtype)
    # frombuffer shares the array's memory (and keeps it alive), like from_numpy
    return torch.frombuffer(arr, dtype=dtype).view(shape)


class _Run(NamedTuple):
    """Per-call state shared by :func:`rasterize` and :func:`coverage_counts`."""
    pc: Optional[_Pieces]
    chunks: _Chunks
    sizes: Tuple[int, ...]
    Hp: int  # key buffer rows per batch entry (image rows + padding)
    Wp: int  # key buffer row pitch


def _prepare(inp, memory_budget, edge_arith, static_shapes, stamp_size, compile_) -> Tuple[_Run, str]:
    dev = inp.pos.device
    memory_budget, edge_arith = _check_options(memory_budget, edge_arith, stamp_size, static_shapes, dev)
    if compile_ and not static_shapes:
        raise ValueError("compile needs static_shapes=True (the dynamic mode has data-dependent shapes)")
    chunks = _chunks(memory_budget, dev)
    sizes = (stamp_size or STATIC_STAMP_SIZE,) if static_shapes else _STAMP_SIZES
    Smax = max(sizes)
    pc = None
    if inp.pos.shape[0] and inp.faces.shape[0]:
        pc = _setup(inp.pos, inp.faces, inp.height, inp.width, inp.viewport, inp.cull_backfaces, chunks, sizes)
        if pc.count == 0:
            pc = None
    # key buffer rows padded so that stamps hanging over the right or bottom edge never wrap
    return _Run(pc, chunks, sizes, inp.height + Smax, inp.width + Smax), edge_arith


def _raster_pass(run: _Run, edge_arith: str, static_shapes: bool, compile_, consume) -> None:
    """Rasterize every stamp, chunk by chunk; ``consume(index, key)`` receives each chunk's
    (index int64 [n], key int64 [n]) pairs (see :func:`_raster_chunk`)."""
    pc, sizes = run.pc, run.sizes
    dev = pc.itab.device
    float_edges = edge_arith == "float32"
    raster = _maybe_compiled("raster", _raster_chunk, compile_)
    bufs = None
    if not (compile_ or float_edges):  # scratch for the largest chunk this call has, not the largest allowed
        need = max((C if static_shapes else min(int(counts[k]), C)) * S * S  # static chunks are padded to C
                   for _, _, counts in pc.blocks for k, S in enumerate(sizes)
                   for C in (max(1, run.chunks.stamp_pixels // (S * S)),))
        bufs = _raster_buffers(max(1, need), dev)
    for c0, c1, counts in pc.blocks:
        for k, S in enumerate(sizes):
            n = int(counts[k])
            if n == 0:
                continue
            C = max(1, run.chunks.stamp_pixels // (S * S))  # S * S * C <= chunks.stamp_pixels
            arrays = _block_stamps(pc, c0, c1, k, S, n, run.Hp, run.Wp)
            if static_shapes and n % C:  # pad with dummy stamps: the dummy piece covers nothing
                pad = C - n % C
                arrays = tuple(torch.cat((a, torch.full((pad,), v, dtype=torch.int64, device=dev)))
                               for a, v in zip(arrays, (pc.dummy, 0, 0, 0, 0)))
            cand, rank, ox, oy, base = arrays
            del arrays
            for s in range(0, cand.shape[0], C):
                cc = cand[s:s + C]
                idx, key = raster(_cols(pc.itab[:_NI_RASTER], cc), _cols(pc.ftab[:_NR_RASTER], cc), rank[s:s + C],
                                  ox[s:s + C], oy[s:s + C], base[s:s + C], S, run.Wp, float_edges,
                                  **({} if bufs is None else {"out": bufs}))
                consume(idx, key)
                del idx, key


def rasterize(inp, memory_budget: Optional[int] = None, *, edge_arith: str = "auto", static_shapes: bool = False,
              stamp_size: Optional[int] = None, compile=False, **_ignored):
    """Backend entry point: :class:`render_npu._validate.RasterInputs` -> (rast, depth).

    Args:
        inp: validated inputs (pos float32 [B, V, 4], faces int32 [F, 3], all on one device).
        memory_budget: bytes of scratch that one chunk of the setup, raster or resolve loop may
            use (default 256 MiB, at least 1 MiB). It bounds the part of the working set that
            would otherwise grow with faces x pixels; the candidate tables (~300 bytes per face)
            and the per-pixel buffers (~17 bytes per pixel) come on top. Never changes the
            result. Chunks grow with the scene up to this budget (their number, and so the
            number of ops, stays constant); on CPU each temporary also stays below 32 MiB.
        edge_arith: "auto" (int64 on CPU and CUDA, float32 elsewhere), "int64" or "float32": how
            edge functions are evaluated per pixel. Both are exact and give identical results.
        static_shapes: one stamp size and fixed chunk shapes (the last chunk padded with a dummy
            piece), so every raster/resolve chunk is the same fixed-shape graph; big pieces are
            cut into more stamps, nothing is dropped. Results equal the dynamic mode's.
        stamp_size: stamp side in pixels in static mode (default 8; a power of two, at most 64).
        compile: with static_shapes, run the chunk kernels through
            ``torch.compile(fullgraph=True, dynamic=False)``; True means the inductor backend, a
            string names another torch.compile backend.
        num_threads and other backend options are accepted and ignored.

    Returns:
        (rast float32 [B, H, W, 4], depth float32 [B, H, W]) on the input device. Host syncs:
        three (clip count; piece and stamp counts; covered pixels), none inside the loops. On CPU
        the call runs its ops on one intra-op thread (see :func:`_cpu_threads`).
    """
    with _cpu_threads(inp.pos.device):
        run, edge_arith = _prepare(inp, memory_budget, edge_arith, static_shapes, stamp_size, compile)
        B, H, W = inp.pos.shape[0], inp.height, inp.width
        rast = _filled((B, H, W, 4), 0, torch.float32, inp.pos.device)
        depth = _filled((B, H, W), 0, torch.float32, inp.pos.device)
        if run.pc is None:
            return rast, depth
        fb = _visibility(run, B, edge_arith, static_shapes, compile)
        return resolve_output(run, fb, rast, depth, inp, static_shapes, compile)


def _visibility(run: _Run, B: int, edge_arith: str, static_shapes: bool, compile_) -> torch.Tensor:
    """The visibility merge: every stamp chunk's keys meet in one ``scatter_reduce(amin)`` per chunk
    into the per-pixel key buffer, int64 [B * Hp * Wp] (``bits(d') << 32 | rank``, or int64 max
    where nothing was drawn): nearest depth wins, equal depth -> lowest rank -> lowest id."""
    fb = _filled((B * run.Hp * run.Wp,), _I64_MAX, torch.int64, run.pc.itab.device)
    _raster_pass(run, edge_arith, static_shapes, compile_, lambda idx, key: fb.scatter_reduce_(0, idx, key, "amin"))
    return fb


def resolve_output(run: _Run, fb: torch.Tensor, rast: torch.Tensor, depth: torch.Tensor, inp,
                   static_shapes: bool = False, compile_=False):
    """The final output step: for each covered pixel of the key buffer ``fb`` (see
    :func:`_visibility`), the winning piece's id and depth-test depth, then the barycentrics and
    depth from the parent triangle (:func:`render_npu.resolve.resolve_`), written into ``rast``
    float32 [B, H, W, 4] and ``depth`` float32 [B, H, W] (zeros elsewhere, as given); returns
    them. One host sync (the covered pixels); chunks of ``run.chunks.resolve`` pixels."""
    pc = run.pc
    B, H, W = rast.shape[:3]
    Hp, Wp = run.Hp, run.Wp
    hit = torch.nonzero((fb.view(B, Hp, Wp)[:, :H, :W] < _EMPTY_BELOW).reshape(-1)).squeeze(1)  # host sync 3
    n = hit.shape[0]
    if n == 0:
        return rast, depth
    resolve = _maybe_compiled("resolve", _resolve_chunk, compile_)
    C = run.chunks.resolve
    if static_shapes and n % C:  # pad by repeating the last pixel (rewrites the same values)
        hit = torch.cat((hit, hit[-1:].expand(C - n % C)))
    rast_flat, depth_flat = rast.view(B * H * W, 4), depth.view(B * H * W)
    HW = H * W
    for s in range(0, hit.shape[0], C):
        q = hit[s:s + C]
        b = torch.div(q, HW, rounding_mode="floor")
        rem = q - b * HW
        py = torch.div(rem, W, rounding_mode="floor")
        px = rem - py * W
        cc = pc.cand.index_select(0, fb.index_select(0, (b * Hp + py) * Wp + px) & 0xFFFFFFFF)
        r, d = resolve(_cols(pc.itab[:_I_B.stop], cc), _cols(pc.itab[_I_C], cc), _cols(pc.ftab[:_R_INVAREA + 1], cc),
                       _cols(pc.ftab[_R_C.start:], cc), px, py)
        # index_copy_: on CPU about half the time of the index_put_ of ``rast_flat[q] = r`` (measured
        # 27 -> 13 ms per call at 1024², first touch of the outputs included)
        rast_flat.index_copy_(0, q, r)
        depth_flat.index_copy_(0, q, d)
    # final barycentrics/depth from the parent triangles: render_npu/resolve.py
    return resolve_parent_(rast, depth, inp.pos, inp.faces, inp.viewport, hit=hit[:n], chunk=C)


@contextlib.contextmanager
def _cpu_threads(device: torch.device):
    """On CPU, run the call's ops on one intra-op thread, restoring the caller's setting after.

    Why: torch's intra-op parallelism splits each op over an OpenMP team whose threads meet at a
    barrier at the end of every op. When another process keeps the cores busy, one team thread
    is regularly descheduled and every op waits a scheduler time slice for it: measured at 200k
    faces, 1024² on the 2-core machine with two busy-loop processes beside it, 1.2-18 s per call
    with 2 threads against 0.5-2.6 s with one (the C++ backend, whose threads share no per-op
    barrier, slowed ~2x). Single-threaded, the quiet cost is ~10 % more wall time."""
    n = torch.get_num_threads()
    if device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def coverage_counts(inp, memory_budget: Optional[int] = None, *, edge_arith: str = "auto",
                    static_shapes: bool = False, stamp_size: Optional[int] = None) -> torch.Tensor:
    """int32 [B, H, W]: how many triangle pieces cover each pixel centre, whatever their depth.

    A test and debugging utility that runs exactly the setup, binning and coverage code of
    :func:`rasterize` and counts instead of resolving visibility: on a closed tessellated surface
    filling the view every count is 1 (no crack, no double coverage of shared edges).
    """
    with _cpu_threads(inp.pos.device):
        run, edge_arith = _prepare(inp, memory_budget, edge_arith, static_shapes, stamp_size, False)
        B, H, W = inp.pos.shape[0], inp.height, inp.width
        cnt = torch.zeros(B * run.Hp * run.Wp, dtype=torch.int32, device=inp.pos.device)
        if run.pc is not None:
            def consume(idx, key):
                cnt.scatter_add_(0, idx, ((key >> 32) < (1 << _UNCOVERED_BIT)).to(torch.int32))

            _raster_pass(run, edge_arith, static_shapes, False, consume)
        return cnt.view(B, run.Hp, run.Wp)[:, :H, :W].contiguous()


