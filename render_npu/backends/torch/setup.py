"""Torch backend, stage 1: options, the candidate tables and triangle setup (clip, snap, edge
equations, depth and barycentric coefficients, ranks). See render_npu/backends/torch/__init__.py
and docs/torch_backend.md."""
from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from ...contract import HALF, MAX_FIXED, SUBPIXEL, is_top_left, pixel_span, plane_distances, snap
from ...contract import screen_transform as _screen_f32
from ...resolve import component_major
DEFAULT_MEMORY_BUDGET = 256 << 20  # bytes of scratch per chunk (setup, raster and resolve loops)
MIN_MEMORY_BUDGET = 1 << 20
_STAMP_SIZES = (4, 8, 16, 32)  # candidate stamp sides in pixels (dynamic mode), ascending
# On CPU one more side, 6, that only takes pieces which are one stamp of the size the cost model
# chose and fit a single 6 x 6 stamp (dense meshes: most 5 x 5 and 6 x 6 boxes, one 8 x 8 stamp
# each: 36 stamp pixels instead of 64; 200k faces at 1024²: 6.86M -> 5.53M stamp pixels). Their
# keys are bitwise the larger stamp's: same anchor, same per-pixel arithmetic over the pixels they
# share. (Pieces of several stamps keep their size: each stamp's depth plane starts at its own first
# pixel, so the rounding follows the anchors.) Not on devices: the class is one more group of ~70
# kernel launches per block, more than the bandwidth it saves there.
_CPU_STAMP_SIZES = (4, 6, 8, 16, 32)
_SINGLE_ONLY = (6,)


def stamp_sizes(device: torch.device) -> Tuple[int, ...]:
    """The stamp sides of the dynamic mode on ``device`` (results do not depend on them)."""
    return _CPU_STAMP_SIZES if device.type == "cpu" else _STAMP_SIZES


def cpu_shortcuts(device: torch.device) -> bool:
    """Whether the CPU-only variants of the dynamic mode apply on ``device`` (each gives bitwise
    the result of the device sequence, and is tested against it): the key scatter through a window
    view of the key buffer (``raster.merge_target``: no per-pixel int64 index; devices run one plain
    1-D ``scatter_reduce``) and the depth-test depth computed only where a parent depth is not
    finite (``driver.resolve_output``). Off on every other device, and while
    ``benchmarks/bench_torch_ops.py`` counts the device sequence."""
    return device.type == "cpu"


STATIC_STAMP_SIZE = 8  # default stamp side in static mode
MAX_STAMP_SIZE = 64
_CLIP_CAP = 16  # polygon capacity of the clipper (a triangle clipped by 6 planes has <= 9)
_FAN = _CLIP_CAP - 2  # fan pieces per clipped triangle (slots; most stay empty)
# Visibility depth d' = z / 8 + 3 / 8: in [1/4, 1/2) for z in [-1, 1], so its float32 bits are
# positive, order like the values and stay below 2**30; uncovered pixels get bits >= 2**30.
_DEPTH_SCALE, _DEPTH_BIAS = 0.125, 0.375
_UNCOVERED_BIT = 30
_STEEP = 4096.0  # |dz/dx| + |dz/dy| per pixel above which a piece's depth is taken as constant
_I64_MAX = (1 << 63) - 1
_EMPTY_BELOW = (1 << _UNCOVERED_BIT) << 32  # keys below this are covered pixels
_SPLIT = 14  # bits of the low part in the float32 edge arithmetic
# As the reference: a piece with a snapped coordinate beyond contract.MAX_FIXED in magnitude (float32
# clipping of wildly scaled inputs broke down) or a non-finite depth covers nothing; this also
# bounds |dx|, |dy|.

# Scratch bytes per unit of work (upper bounds over the live tensors of one chunk):
_BYTES_PER_STAMP_PIXEL = {"int64": 32, "float32": 40}  # bools, depth, key, index (+ float temporaries)
_BYTES_PER_CANDIDATE = 700  # setup temporaries per face (or clip fan slot)
_BYTES_PER_CLIPPED_FACE = 9000  # clipper polygons ([16 x 7] floats, a few copies per plane)
_BYTES_PER_RESOLVE_PIXEL = 500  # gathered table columns, edge values, results (float64 resolve included)
# Chunks follow memory_budget on every device, so that the number of chunks (and so of dispatched
# ops: kernel launches on an NPU) stays the same as scenes grow: the chunk grows instead. On CPU,
# glibc maps every temporary above its mmap threshold afresh per op and unmaps it on free, and the
# page faults then cost more than the arithmetic (measured 1.5x the whole call at 200k faces);
# :func:`cpu_heap_tuning` raises that threshold once, and every CPU temporary is kept below it.
_CPU_HEAP_THRESHOLD = 1 << 26  # bytes: mallopt(M_MMAP_THRESHOLD) (64 MiB), and M_TOP_PAD
# Free memory at the top of the main heap that glibc keeps instead of returning it (M_TRIM_THRESHOLD):
# more than one call's peak heap at 200k faces, 1024² (~250 MB). With 128 MiB the heap was trimmed
# after every call and the next call page-faulted ~40k pages back in (measured on one thread at 200k
# faces, 1024²: 40k minor faults and ~80 ms of CPU time per call, raster 147 -> 67 ms without them).
_CPU_TRIM_THRESHOLD = 1 << 29
_CPU_CAP = {"stamp_pixels": 1 << 22, "candidates": 1 << 19, "clipped": 1 << 13, "resolve": 1 << 20}
_cpu_heap_tuned = [False]


def cpu_heap_tuning() -> bool:
    """Once per process, on glibc: keep freed blocks up to 64 MiB in the heap (``mallopt``
    ``M_MMAP_THRESHOLD``), keep up to 512 MiB of free heap top instead of trimming it
    (``M_TRIM_THRESHOLD``) and keep 64 MiB of padding when trimming (``M_TOP_PAD``: without it
    glibc unmaps a worker thread's whole arena heap as soon as it is free, and the next call faults
    it in again), so that the chunk temporaries of the CPU path are recycled instead of being
    mapped and page-faulted afresh by every op. This is process-wide (like running under jemalloc
    or tcmalloc): freed memory is kept for reuse rather than returned at once. ``RENDER_NPU_MALLOPT=0``
    turns it off. Returns whether it is in effect."""
    if _cpu_heap_tuned[0] is None or _cpu_heap_tuned[0]:
        return bool(_cpu_heap_tuned[0])
    _cpu_heap_tuned[0] = None
    import os

    if os.environ.get("RENDER_NPU_MALLOPT", "1") == "0":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        ok = (bool(libc.mallopt(M_MMAP_THRESHOLD, _CPU_HEAP_THRESHOLD))
              and bool(libc.mallopt(M_TRIM_THRESHOLD, _CPU_TRIM_THRESHOLD))
              and bool(libc.mallopt(M_TOP_PAD, _CPU_HEAP_THRESHOLD)))
    except (OSError, AttributeError):  # not glibc
        return False
    _cpu_heap_tuned[0] = ok
    return ok

# Candidate tables, component-major ([rows, N + 1]: long contiguous rows vectorize; a [N, 3]
# layout is ~10x slower per element on CPU). A candidate is a plain face or one fan slot of a
# clipped face; invalid ones stay in the tables (cheaper than compacting) and are never binned.
# Column N is a dummy piece that covers nothing (padding of static-shape chunks).
# itab int64 [12, N + 1]: E_i(px, py) = B_i py - NA_i px + C_i (i = edge opposite vertex i,
# orientation normalised to positive area); covered iff E_i >= bias_i (top-left rule: bias_i = 0
# on edges going down or exactly left, else 1), i.e. B_i py - NA_i px + Cb_i >= 0, Cb = C - bias.
# The raster reads rows 0..8, the resolve rows 0..5 and 9..11 (ftab: rows 0..3 and 6).
_I_NA, _I_B, _I_CB, _I_C = slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 12)
_NI_RASTER = 9
# ftab float32 [7, N + 1] (16 rows with ``coef``): q0, q1 - q0, q2 - q0 (NDC depth at the
# vertices), 1 / area (area in fixed-point units squared), dz/dpx, dz/dpy (per pixel) -- the
# raster reads rows 0..5 --; the parent triangle id (exact in float32: ids < 2**24); only with
# ``coef`` (the AscendC records): c[i][k] = beta_ik / w_i * min_j w_j (row 7 + 3 i + k;
# barycentrics are invariant to the scale, this keeps them in [0, 1]). The torch backend's own
# resolve solves from the parent triangle and reads no coefficients, so it does not make them.
_R_Q0, _R_DQ, _R_INVAREA, _R_ZX, _R_ZY, _R_ID, _R_C = 0, slice(1, 3), 3, 4, 5, 6, slice(7, 16)
_NR_RASTER = 6


class _Pieces(NamedTuple):
    itab: torch.Tensor
    ftab: torch.Tensor
    box: torch.Tensor  # int64 [4, N]: x0, y0 (first pixel), nx, ny (pixel counts; valid where nst > 0)
    batch: torch.Tensor  # int64 [N]
    cls: torch.Tensor  # int64 [N]: stamp size class (index into the sizes)
    nst: torch.Tensor  # int64 [N]: number of stamps (0 for candidates that are not pieces)
    rank: torch.Tensor  # int64 [N]: position in (batch, face, fan) order among pieces (valid where nst > 0)
    cand: torch.Tensor  # int64 [P + 1]: candidate of each rank; cand[P] = N (the dummy)
    count: int  # P, the number of pieces
    dummy: int  # N
    blocks: List[Tuple[int, int, List[int]]]  # candidate ranges (c0, c1) and their stamp counts per class
    need: Optional[torch.Tensor] = None  # static shapes: (faces needing clipping, clipper overflows), int64 [2]


class _Chunks(NamedTuple):
    """Chunk sizes (units of work per chunk) of the three loops."""
    candidates: int
    clipped: int
    stamp_pixels: int
    resolve: int


def _chunks(memory_budget: int, device: torch.device) -> _Chunks:
    sizes = {"candidates": memory_budget // _BYTES_PER_CANDIDATE,
             "clipped": memory_budget // _BYTES_PER_CLIPPED_FACE,
             "stamp_pixels": memory_budget // max(_BYTES_PER_STAMP_PIXEL.values()),
             "resolve": memory_budget // _BYTES_PER_RESOLVE_PIXEL}
    if device.type == "cpu":
        cpu_heap_tuning()
        sizes = {k: min(v, _CPU_CAP[k]) for k, v in sizes.items()}
    return _Chunks(**{k: max(1, v) for k, v in sizes.items()})


# ----------------------------------------------------------------------------- options

def default_edge_arith(device: torch.device) -> str:
    """``"int64"`` where int64 multiply is fast (CPU, CUDA), ``"float32"`` elsewhere (NPU, ...)."""
    return "int64" if device.type in ("cpu", "cuda") else "float32"


def resolve_dtype(edge_arith: str) -> torch.dtype:
    """Arithmetic of the parent-triangle resolve (render_npu/resolve.py) that goes with the edge
    arithmetic: float64 beside int64 edges (CPU, CUDA: as the reference and the compiled backend,
    and cheaper there than float32's compensated steps), float32 beside float32 edges (the device
    arithmetic: no int64 multiply, no float64)."""
    return torch.float64 if edge_arith == "int64" else torch.float32


def _check_options(memory_budget, edge_arith, stamp_size, static_shapes, device) -> Tuple[int, str]:
    if memory_budget is None:
        memory_budget = DEFAULT_MEMORY_BUDGET
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int):
        raise TypeError(f"memory_budget must be an int (bytes), got {type(memory_budget).__name__}")
    if memory_budget < MIN_MEMORY_BUDGET:
        raise ValueError(f"memory_budget must be at least {MIN_MEMORY_BUDGET} bytes (1 MiB), got {memory_budget}")
    if edge_arith == "auto":
        edge_arith = default_edge_arith(device)
    if edge_arith not in ("int64", "float32"):
        raise ValueError(f"edge_arith must be 'auto', 'int64' or 'float32', got {edge_arith!r}")
    if stamp_size is not None:
        if not static_shapes:
            raise ValueError("stamp_size is a static-shape option; pass static_shapes=True with it")
        if (isinstance(stamp_size, bool) or not isinstance(stamp_size, int) or not 1 <= stamp_size <= MAX_STAMP_SIZE
                or stamp_size & (stamp_size - 1)):
            raise ValueError(f"stamp_size must be a power of two in 1..{MAX_STAMP_SIZE}, got {stamp_size!r}")
    return memory_budget, edge_arith


def each(tasks: List[Callable[[], object]], workers: int = 1) -> list:
    """Run the tasks (callables without arguments), return their results in order.

    ``workers`` > 1 (CPU only, see driver._cpu_threads): on that many threads, each running its ops
    on one intra-op thread, so that no op waits at a per-op barrier for a descheduled thread (why
    CPU calls use one intra-op thread under load) while every core still works; the tasks meet once,
    at the end. They must touch disjoint outputs (or serialise what they share). Inline when a
    TorchDispatchMode is active: modes are thread-local, and op counters must see every op (the op
    sequence is the same either way)."""
    if workers > 1 and len(tasks) > 1 and _get_current_dispatch_mode() is None:
        futures = [_executor(workers).submit(t) for t in tasks]
        wait(futures)  # all of them, also when one raised (the others write into shared outputs)
        return [f.result() for f in futures]
    return [t() for t in tasks]


def later(fn: Callable[[], object], workers: int = 1) -> Callable[[], object]:
    """A callable that returns ``fn()``: with ``workers`` > 1 (CPU, see :func:`each`) ``fn`` starts at
    once on a chunk worker while the caller goes on; otherwise it runs when the result is asked for
    (so the op sequence is the caller's order)."""
    if workers > 1 and _get_current_dispatch_mode() is None:
        return _executor(workers).submit(fn).result
    return fn


_pool: dict = {}
_pool_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    """The process' pool of ``workers`` chunk-worker threads (one intra-op thread each), kept between
    calls: a fresh pool per loop (three per call) started new threads, whose first chunks page-faulted
    a malloc arena in again (one resolve chunk measured 23 ms of CPU against 7 ms for the others)."""
    import os

    with _pool_lock:
        key = (os.getpid(), workers)  # a forked child has none of its parent's threads: its own pool
        ex = _pool.get(key)
        if ex is None:
            ex = _pool[key] = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,),
                                                 thread_name_prefix="render_npu")
        return ex


def _cols(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Columns ``idx`` (int64 [n]) of a [rows, N] table -> [rows, n]. ``gather`` with an expanded
    index: on CPU 4x faster than ``index_select(1, idx)`` or ``table[:, idx]``."""
    return torch.gather(table, 1, idx.expand(table.shape[0], idx.shape[0]))


def _host(t: torch.Tensor) -> list:
    """Copy a small tensor to the host: the backend's only kind of device -> host sync besides
    ``nonzero``. ``copy=True`` makes the copy an op even on CPU, so :func:`count_ops` sees it."""
    return t.to("cpu", copy=True).tolist()


# ----------------------------------------------------------------------------- setup

def _screen(size: int, viewport: str) -> Tuple[float, float]:
    """:func:`render_npu.contract.screen_transform` as Python floats (exact: float32 values)."""
    a, b = _screen_f32(size, viewport)
    return float(a), float(b)


def _outcodes(x, y, z, w) -> torch.Tensor:
    """int32 bit set of the clip planes each clip-space point is outside (the reference's distance
    < 0), 0 inside all six. A triangle whose three vertices share a bit is clipped away entirely by
    that plane, so it needs no clipping (a scene behind the camera costs a setup, not a clip)."""
    code = None
    for bit, d in enumerate(plane_distances(x, y, z, w)):
        outside = (d < 0).to(torch.int32) << bit
        code = outside if code is None else code | outside
    return code


def _clip(V: torch.Tensor):
    """Sutherland-Hodgman of M triangles (float32 [M, 3, 4]) against the six planes, vectorized.

    Mirrors ``reference.clip_triangle`` operation for operation. Returns (P [M, CAP, 4] clip-space
    vertices, beta [M, CAP, 3] barycentrics w.r.t. the parent, n [M] vertex counts (0 when fewer
    than 3 remain), overflow [] int64: polygons that would exceed the capacity).
    """
    M, dev, CAP = V.shape[0], V.device, _CLIP_CAP
    P = torch.zeros((M, CAP, 4), dtype=torch.float32, device=dev)
    P[:, :3] = V
    Bt = torch.zeros((M, CAP, 3), dtype=torch.float32, device=dev)
    Bt[:, :3] = torch.eye(3, dtype=torch.float32, device=dev)
    n = torch.full((M,), 3, dtype=torch.int64, device=dev)
    slot = torch.arange(CAP, device=dev)
    overflow = torch.zeros((), dtype=torch.int64, device=dev)
    for plane in range(6):
        x, y, z, w = P.unbind(-1)
        d = plane_distances(x, y, z, w)[plane]  # [M, CAP]
        nn = n[:, None]
        valid = slot < nn
        j = torch.where(slot + 1 < nn, slot + 1, 0)  # next vertex, cyclic
        Pb = torch.gather(P, 1, j[..., None].expand(-1, -1, 4))
        Bb = torch.gather(Bt, 1, j[..., None].expand(-1, -1, 3))
        db = torch.gather(d, 1, j)
        ina, inb = d >= 0, db >= 0
        # the cut is interpolated from the inside vertex: (vi, di) inside, (vo, do) outside
        ia = ina[..., None]
        Pi, Po = torch.where(ia, P, Pb), torch.where(ia, Pb, P)
        Bi, Bo = torch.where(ia, Bt, Bb), torch.where(ia, Bb, Bt)
        di, do = torch.where(ina, d, db), torch.where(ina, db, d)
        t = (di / (di - do))[..., None]
        Px = Pi + t * (Po - Pi)
        Bx = Bi + t * (Bo - Bi)
        # candidates in the reference's order: vertex a (if inside), then the cut (if crossing)
        emit = torch.stack((valid & ina, valid & (ina != inb)), 2).reshape(M, 2 * CAP)
        candP = torch.stack((P, Px), 2).reshape(M, 2 * CAP, 4)
        candB = torch.stack((Bt, Bx), 2).reshape(M, 2 * CAP, 3)
        pos = torch.cumsum(emit, 1) - 1
        n_new = emit.sum(1)
        pos = torch.where(emit & (pos < CAP), pos, CAP)  # slot CAP collects the rest
        P = torch.zeros((M, CAP + 1, 4), dtype=torch.float32, device=dev).scatter_(
            1, pos[..., None].expand(-1, -1, 4), candP)[:, :CAP]
        Bt = torch.zeros((M, CAP + 1, 3), dtype=torch.float32, device=dev).scatter_(
            1, pos[..., None].expand(-1, -1, 3), candB)[:, :CAP]
        overflow = overflow + (n_new > CAP).sum()
        n = torch.where(n_new < 3, 0, n_new)
    return P, Bt, n, overflow


def _all_rows(m: torch.Tensor) -> torch.Tensor:
    """``m.all(0)`` for a bool [k, n] with a few rows: elementwise ands of the rows (on CPU a
    reduction over a short leading dim is several times slower)."""
    out = m[0] & m[1]
    for row in m[2:]:
        out &= row
    return out


def _snapped_ok(v: torch.Tensor) -> torch.Tensor:
    """bool [...]: snapped vertices v (float32 [4, ...]: fx, fy, q, w) usable by a piece, as the
    reference decides: |fx|, |fy| <= 2**29 (NaN fails) and q finite."""
    return (v[0].abs() <= MAX_FIXED) & (v[1].abs() <= MAX_FIXED) & torch.isfinite(v[2])


def _candidates(XY: torch.Tensor, ok: torch.Tensor, permuted, beta: Optional[torch.Tensor], H: int, W: int,
                cull: bool, sizes, itab: torch.Tensor, ftab: torch.Tensor, box: torch.Tensor, cls: torch.Tensor,
                nst: torch.Tensor) -> torch.Tensor:
    """Set up n candidate pieces into table columns (``itab``, ``ftab``, ``box``, ``cls``, ``nst``
    are views of n columns, written in place; the barycentric coefficients only when ``ftab``
    has their rows). Returns the stamp count per size class (int64
    [len(sizes)]); candidates that are not pieces get nst = 0.

    XY int64 [2, 3, n]: snapped fixed-point x, y of the three vertices (0 where not ok); ok bool
    [n]: the candidate exists and its snapped values are finite; ``permuted(perm, rows)`` with perm
    int64 [3, n] (piece vertex -> candidate vertex) returns float32 [rows, 3, n] (NDC depth q, clip
    w: the first ``rows`` of them) in that vertex order (x, y come from XY: no float gather, no
    float -> int conversion per piece); beta float32 [3, 3, n] (vertex i, parent vertex k) or None for
    the identity (unclipped faces).
    """
    X, Y = XY[0], XY[1]
    signed = (X[1] - X[0]) * (Y[2] - Y[0]) - (X[2] - X[0]) * (Y[1] - Y[0])  # twice the signed area
    ok = ok & ((signed > 0) if cull else (signed != 0))
    # Canonical vertex order: the lowest (y, x) first, then counter-clockwise (positive area; the
    # edge functions equal the reference's orientation-normalised ones). Everything below then
    # depends on the triangle only, not on the order of its vertices: exactly coincident
    # triangles get bitwise equal depths, so the lowest id wins as the contract requires.
    key = Y * (1 << 31) + X  # |X|, |Y| < 2**29
    r = torch.where(key[0] <= key[1], torch.where(key[0] <= key[2], 0, 2), torch.where(key[1] <= key[2], 1, 2))
    neg = (signed < 0).long()
    mod3 = torch.arange(5, device=r.device) % 3  # t % 3 for t in 0..4 as a lookup (6x faster on CPU)
    perm = torch.stack((r, mod3.index_select(0, r + 1 + neg), mod3.index_select(0, r + 2 - neg)))  # [3, n]: piece vertex -> input vertex
    coef = ftab.shape[0] > _R_C.start
    cand = permuted(perm, 2 if coef else 1)  # q (, w)
    # the snapped x, y in canonical order, 0 where not ok (where ok they equal the floats exactly)
    XY = torch.where(ok, torch.gather(XY, 1, perm.expand(2, 3, -1)), 0)
    del key, r, neg, signed
    # edge i runs from vertex a = (i + 1) % 3 to b = (i + 2) % 3; row by row, straight into the
    # table (cheaper than rolled [2, 3, n] intermediates)
    X, Y = XY[0], XY[1]
    for i in range(3):
        a, b = (i + 1) % 3, (i + 2) % 3
        dx, dy = X[b] - X[a], Y[b] - Y[a]
        torch.mul(dy, SUBPIXEL, out=itab[i])  # NA
        torch.mul(dx, SUBPIXEL, out=itab[3 + i])  # B
        c = torch.sub(dx * (HALF - Y[a]), dy * (HALF - X[a]), out=itab[9 + i])  # C
        torch.sub(c, (~is_top_left(dx, dy)).long(), out=itab[6 + i])  # Cb: top-left bias
        if i == 2:
            area = dx * (Y[2] - Y[0]) - dy * (X[2] - X[0])  # twice the area, > 0 for pieces
    del dx, dy, c

    # pixel box: pixels whose centre lies within the vertices' range (contract.pixel_span)
    lo, hi = pixel_span(torch.minimum(torch.minimum(XY[:, 0], XY[:, 1]), XY[:, 2]),
                        torch.maximum(torch.maximum(XY[:, 0], XY[:, 1]), XY[:, 2]))  # [2, n] each
    lo = lo.clamp_min_(0)
    hi[0].clamp_max_(W - 1)
    hi[1].clamp_max_(H - 1)
    ok = ok & (lo[0] <= hi[0]) & (lo[1] <= hi[1])
    box[:2] = lo
    box[2:] = hi - (lo - 1)  # (out= into these strided views would stop torch.compile's tracing)
    nxy = box[2:] * ok
    del XY, lo, hi
    # stamp size: the cheapest class per piece (elementwise; argmin over a short dim is slow)
    best = None
    for k, S in enumerate(sizes):
        if S in _SINGLE_ONLY:
            continue
        sh = S.bit_length() - 1
        n = ((nxy[0] + (S - 1)) >> sh) * ((nxy[1] + (S - 1)) >> sh)
        cost = _stamp_cost(n, S)
        if best is None:
            cls.fill_(k)
            nst.copy_(n)
            best = cost
        else:
            better = cost < best
            best = torch.minimum(best, cost)
            cls.masked_fill_(better, k)
            torch.where(better, n, nst, out=nst)
    for k in reversed(range(len(sizes))):  # descending, so that the smallest fitting side is the last set
        S = sizes[k]
        if S in _SINGLE_ONLY:
            cls.masked_fill_((nst == 1) & (cls > k) & (nxy[0] <= S) & (nxy[1] <= S), k)
    counts = torch.stack([(nst * (cls == k)).sum() for k in range(len(sizes))]) if len(sizes) > 1 else nst.sum()[None]

    # depth: z = sum_i q_i E_i / area, so dz/dpx = -(NA_1 (q1 - q0) + NA_2 (q2 - q0)) / area
    q = cand[0]
    ftab[_R_DQ] = q[1:] - q[:1]
    dq = ftab[_R_DQ]
    ftab[_R_Q0] = q[0]
    inv_area = torch.reciprocal(area.clamp_min_(1).float(), out=ftab[_R_INVAREA])
    na, b = itab[1:3].float(), itab[4:6].float()
    zx = -(na[0] * dq[0] + na[1] * dq[1]) * inv_area
    zy = (b[0] * dq[0] + b[1] * dq[1]) * inv_area
    # a piece this steep is under 1e-3 px thick: every pixel it covers is within the contract's
    # edge tolerance, and a constant depth keeps the float32 depth keys well-behaved
    flat = (zx.abs() + zy.abs()) <= _STEEP
    torch.mul(zx, flat, out=ftab[_R_ZX])
    torch.mul(zy, flat, out=ftab[_R_ZY])

    if not coef:
        return counts
    # perspective barycentric coefficients beta_ik / w_i * min_j w_j (i: piece vertex, k: parent vertex)
    w = cand[1]
    rw = torch.minimum(torch.minimum(w[0], w[1]), w[2]) / w  # [3, n]
    c = ftab[_R_C].view(3, 3, -1)
    if beta is None:  # beta_ik = 1 where piece vertex i is parent vertex k = perm[i]
        c.zero_()
        c.scatter_(1, perm[:, None], rw[:, None])
    else:
        c.copy_(torch.gather(beta, 0, perm[:, None].expand(3, 3, -1)) * rw[:, None])
    return counts


def _stamp_cost(n_stamps: torch.Tensor, S: int) -> torch.Tensor:
    """Relative cost of rasterizing ``n_stamps`` stamps of side S (eager CPU, measured): ~10 ops
    per stamp pixel, ~8 ops on per-stamp row/column tables, ~40 per-stamp ops and gathers."""
    return n_stamps * (10 * S * S + 24 * S + 60)


def _setup(pos: torch.Tensor, faces: torch.Tensor, H: int, W: int, viewport: str, cull: bool,
           chunks: _Chunks, sizes, clip_capacity: Optional[int] = None, coef: bool = False,
           workers: int = 1) -> _Pieces:
    """Triangle setup for all faces and batch entries (see the module docstring); the candidates
    are set up in blocks, which the raster loop then walks in the same order.

    pos: float32 [B, V, 4]; faces: int32 [F, 3]. Two host syncs (the number of triangles that
    need clipping; the number of pieces with the per-block stamp counts). With ``clip_capacity``
    (static shapes): none; the first ``clip_capacity`` triangles that need clipping are clipped,
    the piece count and the block's stamp counts stay tensors, and ``_Pieces.need`` holds
    (triangles that needed clipping, polygons over the clipper's capacity).
    """
    dev = pos.device
    B, V, F = pos.shape[0], pos.shape[1], faces.shape[0]
    G = B * F
    ax, bx = _screen(W, viewport)
    ay, by = _screen(H, viewport)
    fidx = component_major(faces, torch.int64)  # [3, F]: contiguous, so that its blocks' flat views need no copy

    # per-vertex projection: a vertex shared by many faces is projected once (same result)
    def project(v0: int, v1: int):  # vertices v0..v1 (elementwise: any split gives the same values)
        pt = component_major(pos.reshape(B * V, 4)[v0:v1])
        x, y, z, w = pt
        vt = torch.stack((snap(x / w, ax, bx), snap(y / w, ay, by), z / w, w))  # [4, n]
        vok = _all_rows(torch.isfinite(pt))
        vcode = _outcodes(x, y, z, w)
        vfin = _snapped_ok(vt)  # w = 0 makes the snapped values NaN
        # exact int64 fixed-point coordinates, once per vertex (0 where not finite: never used then)
        vxy = torch.where(vfin, vt[:2], 0.0).long()  # integral floats below 2**29 where it matters
        return vt, vok, vcode, vok & (vcode == 0), vfin, vxy

    # with chunk workers (CPU) in one range per worker: this part runs before the first host sync,
    # alone on the main thread otherwise
    step = max(1, -(-(B * V) // workers))
    parts = each([functools.partial(project, v0, min(B * V, v0 + step)) for v0 in range(0, B * V, step)], workers)
    vt, vok, vcode, vin, vfin, vxy = parts[0] if len(parts) == 1 else [torch.cat(p, -1) for p in zip(*parts)]
    del parts

    def vertex_ids(g0: int, g1: int) -> torch.Tensor:  # [3, n] vertex indices of faces g0..g1
        g = torch.arange(g0, g1, device=dev)
        b = torch.div(g, F, rounding_mode="floor")
        return fidx[:, g - b * F] + b * V

    vid = (vertex_ids(0, G) if B > 1 else fidx).reshape(-1)
    # the three per-vertex flags in one int32 word (outcode bits 0..5, finite 6, inside 7): one
    # gather per face vertex instead of three, and the face's "all" is one bitwise and
    fw = (vcode | (vok.to(torch.int32) << 6) | (vin.to(torch.int32) << 7)).index_select(0, vid).view(3, G)
    fw = fw[0] & fw[1] & fw[2]
    fplain = (fw & 128) != 0
    to_clip = ((fw & 64) != 0) & ~fplain & ((fw & 63) == 0)
    del fw
    mvalid = None
    if clip_capacity is None:
        gclip = torch.nonzero(to_clip).squeeze(1)  # host sync 1
    else:  # the first clip_capacity of them, in face order, without a sync (slot M collects the rest)
        slot = torch.cumsum(to_clip, 0) - 1
        slot = torch.where(to_clip & (slot < clip_capacity), slot, clip_capacity)
        gclip = torch.zeros(clip_capacity + 1, dtype=torch.int64, device=dev).scatter_(
            0, slot, torch.arange(G, device=dev))[:clip_capacity]
        mvalid = torch.arange(clip_capacity, device=dev) < to_clip.sum()
    del vid
    M = gclip.shape[0]
    N = G + M * _FAN

    itab = torch.empty((12, N + 1), dtype=torch.int64, device=dev)
    ftab = torch.empty((_R_C.stop if coef else _R_C.start, N + 1), dtype=torch.float32, device=dev)
    box = torch.empty((4, N), dtype=torch.int64, device=dev)
    cls = torch.empty((N,), dtype=torch.int64, device=dev)
    nst = torch.empty((N,), dtype=torch.int64, device=dev)
    batch = torch.empty((N,), dtype=torch.int64, device=dev)

    def block(c0, c1, XY, exists, permuted, beta):
        sl = slice(c0, c1)
        return _candidates(XY, exists, permuted, beta, H, W, cull, sizes, itab[:, sl], ftab[:, sl], box[:, sl],
                           cls[sl], nst[sl])

    def plain(g0: int, g1: int) -> torch.Tensor:  # faces g0..g1 (no clipping): their block
        vid = vertex_ids(g0, g1) if B > 1 else fidx[:, g0:g1]
        n = g1 - g0
        sl = slice(g0, g1)
        vflat = vid.reshape(-1)  # one copy at most (a block of the batch-1 face table)
        okf = fplain[sl] & _all_rows(vfin.index_select(0, vflat).view(3, n))

        def permuted(perm, rows):  # q (, w) in canonical order straight from the vertex table
            return _cols(vt[2:2 + rows], torch.gather(vid, 0, perm).reshape(-1)).view(rows, 3, n)

        counts = block(g0, g1, _cols(vxy, vflat).view(2, 3, n), okf, permuted, None)
        g = torch.arange(g0, g1, device=dev)
        if B == 1:  # face id = g, batch 0 (no int64 division)
            ftab[_R_ID, sl] = g.float()
            batch[sl].zero_()
        else:
            b = torch.div(g, F, rounding_mode="floor")
            ftab[_R_ID, sl] = (g - b * F).float()
            batch[sl] = b
        return counts

    # plain faces, in blocks (with workers, at least one per worker: they fill disjoint columns)
    step = chunks.candidates if workers <= 1 else max(1, min(chunks.candidates, -(-G // workers)))
    ranges = [(g0, min(G, g0 + step)) for g0 in range(0, G, step)]
    counts = each([functools.partial(plain, g0, g1) for g0, g1 in ranges], workers)

    # clipped faces (usually few), in chunks; each yields _FAN fan slots (0, i, i + 1)
    overflow = torch.zeros((), dtype=torch.int64, device=dev)
    if M:
        i = torch.arange(1, _FAN + 1, device=dev)
        fan = torch.stack((torch.zeros_like(i), i, i + 1), 1)  # [_FAN, 3]
        for m0 in range(0, M, chunks.clipped):
            m1 = min(M, m0 + chunks.clipped)
            gm = gclip[m0:m1]
            bm = torch.div(gm, F, rounding_mode="floor")
            fm = gm - bm * F
            Pc, Bc, nc, over = _clip(pos[bm[:, None], fidx.t()[fm]])
            overflow = overflow + over
            Xn, Yn = Pc[..., 0] / Pc[..., 3], Pc[..., 1] / Pc[..., 3]
            pv = torch.stack((snap(Xn, ax, bx), snap(Yn, ay, by), Pc[..., 2] / Pc[..., 3], Pc[..., 3]))  # [4, m, CAP]
            n = (m1 - m0) * _FAN
            cand = pv[:, :, fan].permute(0, 3, 1, 2).reshape(4, 3, n)  # [4, 3 (vertex), m * _FAN]
            beta = Bc[:, fan].permute(2, 3, 0, 1).reshape(3, 3, n)  # [3 (vertex i), 3 (parent k), m * _FAN]
            exists = ((i + 1)[None, :] < nc[:, None]).reshape(n) & _snapped_ok(cand).all(0)
            if mvalid is not None:  # empty slots of the static clip capacity
                exists = exists & mvalid[m0:m1, None].expand(-1, _FAN).reshape(n)
            XY = torch.where(exists, cand[:2], 0.0).long()  # exact: integral floats below 2**29

            def permuted(perm, rows, cand=cand):
                return torch.gather(cand[2:2 + rows], 1, perm.expand(rows, 3, -1))

            sl = slice(G + m0 * _FAN, G + m1 * _FAN)
            ranges.append((sl.start, sl.stop))
            counts.append(block(sl.start, sl.stop, XY, exists, permuted, beta))
            ftab[_R_ID, sl] = fm.float().repeat_interleave(_FAN)
            batch[sl] = bm.repeat_interleave(_FAN)

    # ranks: pieces in (batch, face, fan) order, so a lower rank means a lower triangle id
    ok = nst > 0
    cnt = ok[:G].long()
    if M:
        cnt.index_add_(0, gclip, ok[G:].view(M, _FAN).sum(1))
    first = torch.cumsum(cnt, 0) - cnt
    if clip_capacity is not None:
        return _static_ranks(itab, ftab, box, batch, cls, nst, ok, first, gclip, G, M, N, counts,
                             torch.stack((to_clip.sum(), overflow)))
    tot = _host(torch.cat((torch.stack((cnt.sum(), overflow)), torch.stack(counts).reshape(-1))))  # host sync 2
    P, n_over = int(tot[0]), int(tot[1])
    K = len(sizes)
    blocks = [(c0, c1, tot[2 + K * i:2 + K * (i + 1)]) for i, (c0, c1) in enumerate(ranges)]
    if n_over:
        raise RuntimeError(f"torch backend: {n_over} clipped polygon(s) exceeded {_CLIP_CAP} vertices "
                           "(degenerate input); please report this scene")
    if P >= 2 ** 31 - 1:
        raise ValueError(f"torch backend: {P} triangle pieces after clipping is more than it indexes "
                         "(2**31 - 1); rasterize fewer batch entries per call")
    rank = _ranks(first, gclip, ok, G, M, P)
    cand_of = torch.empty(P + 1, dtype=torch.int64, device=dev).index_copy_(0, rank, torch.arange(N, device=dev))
    cand_of[P:].fill_(N)  # fill_, not item assignment: that would lift a host scalar tensor
    _dummy_column(itab, ftab, N)
    return _Pieces(itab, ftab, box, batch, cls, nst, rank, cand_of, P, N, blocks)


def _ranks(first, gclip, ok, G: int, M: int, P):
    """Rank of every candidate in (batch, face, fan) order among the pieces, P for non-pieces:
    ``first`` [G] is each face's first rank, a clipped face's fan slots follow it."""
    rank = first
    if M:
        rank = torch.cat((first, (first[gclip][:, None] + torch.cumsum(ok[G:].view(M, _FAN), 1) - 1).reshape(-1)))
    return torch.where(ok, rank, P)


def _dummy_column(itab: torch.Tensor, ftab: torch.Tensor, N: int) -> None:
    """Column N: a dummy piece covering nothing (E = -1 < bias everywhere)."""
    itab[:, N].fill_(0)
    itab[_I_CB, N].fill_(-1)
    ftab[:, N].fill_(0.0)
    ftab[_R_INVAREA, N].fill_(1.0)


def _static_ranks(itab, ftab, box, batch, cls, nst, ok, first, gclip, G: int, M: int, N: int, counts, need) -> _Pieces:
    """The end of :func:`_setup` with static shapes: ranks and the rank -> candidate map without
    knowing the piece count on the host (ranks of non-pieces and the map past the last piece
    point at the dummy column N)."""
    dev = itab.device
    P = ok.sum()
    rank = _ranks(first, gclip, ok, G, M, P)
    # non-pieces write slot N + 1, which is cut off: cand_of[r] = N for every r >= P
    cand_of = torch.full((N + 2,), N, dtype=torch.int64, device=dev).index_copy_(
        0, torch.where(ok, rank, N + 1), torch.arange(N, device=dev))[:N + 1]
    _dummy_column(itab, ftab, N)
    return _Pieces(itab, ftab, box, batch, cls, nst, rank, cand_of, P, N, [(0, N, torch.stack(counts).sum(0))], need)




def setup_pieces(inp, memory_budget: Optional[int] = None, sizes=_STAMP_SIZES) -> Optional[_Pieces]:
    """The set-up pieces of validated inputs (:class:`render_npu._validate.RasterInputs`), with the
    barycentric coefficients (``_R_C``) that the AscendC records carry, or None when there are
    none. Two host syncs (see :func:`_setup`)."""
    if not (inp.pos.shape[0] and inp.faces.shape[0]):
        return None
    chunks = _chunks(DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget, inp.pos.device)
    pc = _setup(inp.pos, inp.faces, inp.height, inp.width, inp.viewport, inp.cull_backfaces, chunks, sizes,
                coef=True)
    return pc if pc.count else None
