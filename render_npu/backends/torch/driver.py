"""Torch backend driver: the chunk loops, the visibility merge and the entry points
(:func:`rasterize`, :func:`coverage_counts`)."""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Dict, NamedTuple, Optional, Tuple

import torch

from ..._threads import split_intra_op_threads
from ...resolve import parents as parent_tables
from ...resolve import resolve_chunk as resolve_parent_chunk
from . import static
from .raster import _block_stamps, _raster_buffers, _raster_chunk, _resolve_chunk, merge_target
from .setup import (resolve_dtype, _CLIP_CAP, _EMPTY_BELOW, _I64_MAX, _NI_RASTER, _NR_RASTER, _R_ID, stamp_sizes,
                    _UNCOVERED_BIT, STATIC_STAMP_SIZE, _check_options, _chunks, _Chunks, _cols, _host, cpu_shortcuts, later,
                    _Pieces, _setup, each)

# ----------------------------------------------------------------------------- driver

_compiled: Dict[str, object] = {}


def _static_fn(compile_):
    """:func:`static.rasterize_static`, or its ``torch.compile(fullgraph=True, dynamic=False)``
    (``compile_`` True: inductor, or a backend name), made once per backend."""
    if not compile_:
        return static.rasterize_static
    backend = compile_ if isinstance(compile_, str) else "inductor"
    if backend not in _compiled:
        _compiled[backend] = torch.compile(static.rasterize_static, fullgraph=True, dynamic=False, backend=backend)
    return _compiled[backend]


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


def _prepare(inp, memory_budget, edge_arith, workers: int = 1) -> Tuple[_Run, str]:
    dev = inp.pos.device
    memory_budget, edge_arith = _check_options(memory_budget, edge_arith, None, False, dev)
    chunks = _chunks(memory_budget, dev)
    sizes = stamp_sizes(dev)
    Smax = max(sizes)
    pc = None
    if inp.pos.shape[0] and inp.faces.shape[0]:
        pc = _setup(inp.pos, inp.faces, inp.height, inp.width, inp.viewport, inp.cull_backfaces, chunks, sizes,
                    workers=workers)
        if pc.count == 0:
            pc = None
    # key buffer rows padded so that stamps hanging over the right or bottom edge never wrap
    return _Run(pc, chunks, sizes, inp.height + Smax, inp.width + Smax), edge_arith


def _raster_pass(run: _Run, edge_arith: str, consume, workers: int = 1, window: bool = False) -> None:
    """Rasterize every stamp, chunk by chunk; ``consume(index, key)`` receives each chunk's
    (index int64 [n], key int64 [n]) pairs (see :func:`_raster_chunk`). With ``workers`` > 1 (CPU,
    :func:`.setup.each`) the (block, stamp size) groups run on that many threads, largest first, and
    ``consume`` is called under a lock, so it must not depend on the order of the chunks (``amin``,
    sums). ``index`` is flat, or with ``window`` (CPU only, :func:`.setup.cpu_shortcuts`) the stamp
    bases [S, S, C] of :func:`.raster.merge_target`."""
    pc, sizes = run.pc, run.sizes
    dev = pc.itab.device
    float_edges = edge_arith == "float32"
    need = 0
    if not float_edges:  # scratch for the largest chunk this call has, not the largest allowed
        need = max(1, max(min(int(counts[k]), max(1, run.chunks.stamp_pixels // (S * S))) * S * S
                          for _, _, counts in pc.blocks for k, S in enumerate(sizes)))
    local = threading.local()  # one set of scratch buffers per thread
    lock = threading.Lock()

    def group(c0: int, c1: int, k: int, S: int, n: int) -> None:
        bufs = None
        if need:
            bufs = getattr(local, "bufs", None)
            if bufs is None:
                bufs = local.bufs = _raster_buffers(need, dev, window)
        C = max(1, run.chunks.stamp_pixels // (S * S))  # S * S * C <= chunks.stamp_pixels
        cand, rank, ox, oy, base = _block_stamps(pc, c0, c1, k, S, n, run.Hp, run.Wp)
        for s in range(0, cand.shape[0], C):
            cc = cand[s:s + C]
            idx, key = _raster_chunk(_cols(pc.itab[:_NI_RASTER], cc), _cols(pc.ftab[:_NR_RASTER], cc),
                                     rank[s:s + C], ox[s:s + C], oy[s:s + C], base[s:s + C], S, run.Wp,
                                     float_edges, **({} if bufs is None else {"out": bufs}), window=window)
            with lock:
                consume(idx, key)
            del idx, key

    groups = [(c0, c1, k, S, int(counts[k])) for c0, c1, counts in pc.blocks for k, S in enumerate(sizes)
              if int(counts[k])]
    if workers > 1:  # largest first (stamp pixels), so that no worker is left with a big group at the end
        groups.sort(key=lambda g: -g[4] * g[3] * g[3])
    each([functools.partial(group, *g) for g in groups], workers)


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
        static_shapes: the whole call as one fixed-shape computation without host syncs
            (:func:`render_npu.backends.torch.static.rasterize_static`: one stamp size, fixed
            capacities), followed by one host sync that checks the capacities (and reruns with
            exact ones when they were short). Results equal the dynamic mode's bit for bit.
        stamp_size: stamp side in pixels in static mode (default 8; a power of two, at most 64).
        compile: with static_shapes, run ``rasterize_static`` as one graph through
            ``torch.compile(fullgraph=True, dynamic=False)``; True means the inductor backend, a
            string names another torch.compile backend.
        num_threads and other backend options are accepted and ignored.

    Returns:
        (rast float32 [B, H, W, 4], depth float32 [B, H, W]) on the input device. Host syncs:
        three (clip count; piece and stamp counts; covered pixels), none inside the loops, and on
        CPU a fourth (:func:`resolve_output`: were parent depths non-finite). On CPU
        each op runs on one intra-op thread, and the setup blocks, raster groups and resolve chunks
        are spread over ``torch.get_num_threads()`` threads (see :func:`_cpu_threads`); results do
        not depend on it.
    """
    _check_options(memory_budget, edge_arith, stamp_size, static_shapes, inp.pos.device)
    if compile and not static_shapes:
        raise ValueError("compile needs static_shapes=True (the dynamic mode has data-dependent shapes)")
    with _cpu_threads(inp.pos.device) as workers:
        if static_shapes:
            return _rasterize_static(inp, memory_budget, edge_arith, stamp_size or STATIC_STAMP_SIZE, compile)
        run, edge_arith = _prepare(inp, memory_budget, edge_arith, workers)
        B, H, W = inp.pos.shape[0], inp.height, inp.width
        rast = _filled((B, H, W, 4), 0, torch.float32, inp.pos.device)
        depth = _filled((B, H, W), 0, torch.float32, inp.pos.device)
        if run.pc is None:
            return rast, depth
        fb = _visibility(run, B, edge_arith, workers)
        return resolve_output(run, fb, rast, depth, inp, resolve_dtype(edge_arith), workers)


def _rasterize_static(inp, memory_budget, edge_arith, stamp_size: int, compile_):
    """``static_shapes=True``: :func:`static.rasterize_static` with the default capacities, then
    one host sync to read what it needed; if a capacity was short, again with exact ones (twice
    at most when too few faces were clipped: their stamps are counted once they are)."""
    _check_options(memory_budget, edge_arith, stamp_size, True, inp.pos.device)
    args = (inp.pos, inp.faces, inp.height, inp.width, inp.viewport, inp.cull_backfaces)
    opts = {"stamp_size": stamp_size, "memory_budget": memory_budget, "edge_arith": edge_arith}
    fn = _static_fn(compile_)
    max_stamps, max_clipped = static.default_capacities(inp.pos.shape[0], inp.faces.shape[0], inp.height,
                                                        inp.width, stamp_size)
    while True:
        rast, depth, need = fn(*args, max_stamps=max_stamps, max_clipped=max_clipped, **opts)
        n_clip, n_stamps, n_over = _host(need)  # the one host sync (per run)
        if n_over:
            raise RuntimeError(f"torch backend: {n_over} clipped polygon(s) exceeded {_CLIP_CAP} vertices "
                               "(degenerate input); please report this scene")
        if n_clip <= max_clipped and n_stamps <= max_stamps:
            return rast, depth
        # exact capacities; the stamps of the faces clipped only now are counted by the next run
        max_stamps, max_clipped = max(n_stamps, max_stamps), max(n_clip, max_clipped)


def _visibility(run: _Run, B: int, edge_arith: str, workers: int = 1) -> torch.Tensor:
    """The visibility merge: every stamp chunk's keys meet in one ``scatter_reduce(amin)`` per chunk
    into the per-pixel key buffer, int64 [B * Hp * Wp] (``bits(d') << 32 | rank``, or int64 max
    where nothing was drawn): nearest depth wins, equal depth -> lowest rank -> lowest id."""
    fb = _filled((B * run.Hp * run.Wp,), _I64_MAX, torch.int64, run.pc.itab.device)
    def consume(idx, key):
        target, dim = merge_target(fb, idx, run.Wp)
        target.scatter_reduce_(dim, idx, key, "amin")

    _raster_pass(run, edge_arith, consume, workers, cpu_shortcuts(fb.device))
    return fb


# Resolve chunk on CPU: pixels whose temporaries stay in cache (measured at 20k faces, 1024², 750k
# covered pixels: 2**16 or 2**17 pixels per chunk ~215 ms per call, 2**20 347 ms); devices follow
# memory_budget.
_CPU_RESOLVE_CHUNK = 1 << 17


def resolve_output(run: _Run, fb: torch.Tensor, rast: torch.Tensor, depth: torch.Tensor, inp,
                   dtype: torch.dtype = torch.float32, workers: int = 1):
    """The final output step: for each covered pixel of the key buffer ``fb`` (see
    :func:`_visibility`), the winning piece's id and depth-test depth (the fallback where the
    parent's depth is not finite; on CPU computed afterwards, only for chunks that need it), then,
    in the same chunk, the barycentrics and depth from the parent triangle
    (:func:`render_npu.resolve.resolve_chunk`, solved in ``dtype``, :func:`.setup.resolve_dtype`),
    written once into ``rast`` float32 [B, H, W, 4] and ``depth`` float32 [B, H, W] (zeros
    elsewhere, as given); returns them. One host sync (the covered pixels; on CPU a second, the
    chunks' non-finite flags); chunks of ``run.chunks.resolve`` pixels (on CPU at most
    ``_CPU_RESOLVE_CHUNK``), on ``workers`` threads (:func:`.setup.each`; they write disjoint pixels)."""
    pc = run.pc
    B, H, W = rast.shape[:3]
    Hp, Wp = run.Hp, run.Wp
    # the parent tables on a chunk worker (CPU) while this thread finds the covered pixels
    parents = later(functools.partial(parent_tables, inp.pos, inp.faces, H, W, inp.viewport, dtype), workers)
    # (b, py, px) of every covered pixel straight from nonzero (no int64 divisions per pixel)
    hit = torch.nonzero(fb.view(B, Hp, Wp)[:, :H, :W] < _EMPTY_BELOW)  # [n, 3]; host sync 3
    n = hit.shape[0]
    if n == 0:
        return rast, depth
    par = parents()
    C = run.chunks.resolve
    if rast.device.type == "cpu":  # chunks whose ~40 temporaries stay in cache (see _CPU_RESOLVE_CHUNK)
        C = min(C, _CPU_RESOLVE_CHUNK)
    if workers > 1:  # equal chunks, a multiple of the workers in number (no worker left with a remnant)
        k = -(-n // C)
        C = -(-n // (-(-k // workers) * workers))
    rast_flat, depth_flat = rast.view(B * H * W, 4), depth.view(B * H * W)
    # CPU: the depth-test depth (11 gathered table rows and ~15 ops per pixel, ~20 % of the resolve) is
    # only the fallback for a non-finite parent depth; compute it afterwards, only for the chunks that
    # have one (one host read of a flag per chunk: a fourth sync, CPU only). Same bits as computing it
    # always: where it is used it goes float32 -> float64 -> float32 unchanged.
    lazy = cpu_shortcuts(rast.device)
    bad: Dict[int, torch.Tensor] = {}

    def pixels(s: int):
        b, py, px = hit[s:s + C].unbind(1)
        if B > 1:
            q, k = (b * H + py) * W + px, (b * Hp + py) * Wp + px
        else:
            b, q, k = None, py * W + px, py * Wp + px
        cc = pc.cand.index_select(0, fb.index_select(0, k) & 0xFFFFFFFF)
        return b, py, px, q, cc, pc.ftab[_R_ID].index_select(0, cc)

    def chunk(s: int) -> None:
        b, py, px, q, cc, gid = pixels(s)
        if lazy:
            ident, d = gid + 1.0, None
        else:
            ident, d = _resolve_chunk(pc.itab, pc.ftab, cc, gid, px, py)
        bary, d = resolve_parent_chunk(par, b, gid.long(), px, py, d)
        # whole rows (b0, b1, b2, id + 1) with index_copy_: on CPU about half the time of an
        # index_put_ (measured 27 -> 13 ms per call at 1024², first touch of the outputs included)
        rows = torch.empty((4, q.shape[0]), dtype=torch.float32, device=q.device)  # component-major:
        rows[:3] = bary  # contiguous converting copies (a concatenation of the transposed rows before:
        rows[3] = ident  # ~15 % slower with the index_copy_)
        rast_flat.index_copy_(0, q, rows.t())
        depth_flat.index_copy_(0, q, d.to(torch.float32))
        if lazy:
            bad[s] = torch.isfinite(d).logical_not_()

    starts = range(0, n, C)
    each([functools.partial(chunk, s) for s in starts], workers)
    if lazy:
        for s, redo in zip(starts, _host(torch.stack([bad[s].any() for s in starts]))):  # host sync 4 (CPU)
            if redo:
                b, py, px, q, cc, gid = pixels(s)
                d = _resolve_chunk(pc.itab, pc.ftab, cc, gid, px, py)[1]
                depth_flat.index_copy_(0, q, torch.where(bad[s], d, depth_flat.index_select(0, q)))
    return rast, depth


@contextlib.contextmanager
def _cpu_threads(device: torch.device):
    """On CPU, run the call's ops on one intra-op thread (:mod:`render_npu._threads`), restoring
    the caller's setting after; yields the number of chunk workers (:func:`.setup.each`): the
    caller's thread count on CPU, 1 elsewhere. Whole chunks on separate threads (one intra-op
    thread each) meet only once per loop, like the C++ backend's threads."""
    n = torch.get_num_threads() if device.type == "cpu" else 1
    with split_intra_op_threads(n, device):
        yield n


def coverage_counts(inp, memory_budget: Optional[int] = None, *, edge_arith: str = "auto") -> torch.Tensor:
    """int32 [B, H, W]: how many triangle pieces cover each pixel centre, whatever their depth.

    A test and debugging utility that runs exactly the setup, binning and coverage code of
    :func:`rasterize` and counts instead of resolving visibility: on a closed tessellated surface
    filling the view every count is 1 (no crack, no double coverage of shared edges).
    """
    with _cpu_threads(inp.pos.device):
        run, edge_arith = _prepare(inp, memory_budget, edge_arith)
        B, H, W = inp.pos.shape[0], inp.height, inp.width
        cnt = torch.zeros(B * run.Hp * run.Wp, dtype=torch.int32, device=inp.pos.device)
        if run.pc is not None:
            def consume(idx, key):
                target, dim = merge_target(cnt, idx, run.Wp)
                target.scatter_add_(dim, idx, ((key >> 32) < (1 << _UNCOVERED_BIT)).to(torch.int32))

            _raster_pass(run, edge_arith, consume, window=cpu_shortcuts(cnt.device))
        return cnt.view(B, run.Hp, run.Wp)[:, :H, :W].contiguous()


