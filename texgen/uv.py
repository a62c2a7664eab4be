"""UV unwrapping that finishes on the meshes shape generators make (200k to 1.5M faces).

``unwrap(mesh, texture_size, padding, method)`` returns a copy of the mesh with a fresh atlas:

* ``method="xatlas"``: xatlas (default chart options), above 5000 faces in a child process so
  that Ctrl-C stops it at once (and a crash of xatlas is a MeshError, not ours); its cost grows
  faster than linearly (20k faces: 2-20 s, 200k faces: over 7 minutes on 2 cores).
* ``method="charts"``: texgen's own, linear-time atlas:

  1. **charts**: region growing over the face-adjacency graph (faces sharing an edge) from seeds
     taken in face order; a face joins the chart when its normal is within ``max_angle`` (default
     40 degrees) of the chart's axis, comparing normals smoothed over neighbours (so noise does not
     shatter charts) and bounding each face's own normal to 75 degrees from the axis.
     One Lloyd step regrows the charts from their most central faces around their mean normals;
  2. **parametrisation**: each chart is projected orthographically onto the plane normal to its
     area-weighted mean normal (its growth axis when the mean strays too far), then turned to its
     smallest bounding box. Every face is front-facing in its chart's projection, so no triangle
     flips and the stretch is bounded: ``1 / cos(angle)`` across the slope, 1 along it;
  3. **packing**: charts are scaled to one texel density and packed by their column profiles
     (taken from their outline edges) on a per-column skyline (tallest first, lowest then leftmost
     position; up to :data:`TURN_CHARTS` charts, each may be turned by 90 degrees); the density is
     the largest one that fits (bisection, then a few probes above it). Charts longer than half
     the atlas are halved, round after round; each round's charts are packed and the densest kept
     (fewer cuts unless more are 1% denser: a thin shell's plates pack as 4 halves, 3 stacked and
     1 turned, denser than as 8 quarters). The gutter is bilinear-safe
     (as xatlas's ``bilinear=True``): ``padding`` empty texels between the charts' bilinear
     footprints, i.e. their triangles are ``padding + 3`` texels apart; it is widened by up to 8
     more texels while that costs at most 3% of the density (few, large charts). The bake's fill
     of the texels no view saw (silhouettes, a shell's rim) blends what lies near them in the
     atlas; a narrow gutter lets a neighbouring chart's colour in (thin shell: 42 dB with 1
     texel between footprints, 51 dB with the widened gutter);
  4. **verification**: the atlas is rasterized with render_npu; faces that share a texel (a
     projection that folds over itself, duplicate faces) become one-face charts and the atlas is
     repacked.

* ``method="auto"`` (default, :func:`choose_method`): xatlas when no connected part has more
  than :data:`XATLAS_MAX_FACES` faces (there it takes seconds and makes fewer charts, shorter
  seams), the chart atlas otherwise, and when xatlas's child process dies.

Both are deterministic (same mesh and options -> same bits). UV conventions are texgen's
(:mod:`texgen.mesh`): ``v = 0`` is the bottom image row, texel ``(row, col)`` has its centre at
``u = col / (W - 1)``, ``v = 1 - row / (H - 1)``; the atlas is square (``texture_size`` texels).

Quality measures (:func:`atlas_stats`) follow the issue that asked for this module: atlas use
(fraction of texel centres covered), overlap (texels covered by two triangles), Sander et al.'s
area-weighted L2 / Linf stretch and seam length. ``benchmarks/bench_unwrap.py`` compares the
methods; results are in docs/texgen.md.

For Hunyuan3D-2's ``mesh_uv_wrap`` slot there is :func:`mesh_uv_wrap` (trimesh in, trimesh out).
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, Optional, Tuple

import numpy as np

from .mesh import Mesh, MeshError, load_mesh

__all__ = ["unwrap", "choose_method", "mesh_uv_wrap", "atlas_stats", "uv_overlap_texels", "METHODS", "XATLAS_MAX_FACES"]

METHODS = ("auto", "xatlas", "charts")
XATLAS_MAX_FACES = 30000  # auto: xatlas below this (measured in benchmarks/bench_unwrap.py)
XATLAS_MAX_PARTS_FACES = 1_500_000  # auto: xatlas on meshes of small parts up to this many faces
XATLAS_INPROCESS_FACES = 5000  # below this xatlas takes < 0.5 s: run it here, no child process
DEFAULT_MAX_ANGLE = 40.0
SMOOTH_STEPS = 4  # neighbour-averaging passes over the normals that choose charts (noise)
ORIENTATIONS = 18  # chart rotations tried for the smallest bounding box (5-degree steps)
SMALL_CHART = 4  # charts of at most this many faces are absorbed by a neighbour when possible
BILINEAR_GAP = 3  # charts' geometry >= padding + 3 texels apart: padding empty texels between bilinear footprints
ORDERS = ('height', 'width')  # skyline orders: tallest first, then (if that fails) widest first
PROBE_STEP = 1.03
MANY_CHARTS = 2000  # above this many charts: one skyline order, no density probes (time)
SLACK = 8  # turned-only-when-needed skyline: leftmost position up to this many texels above the lowest
SPLIT_GAIN = 1.01  # more halving of big charts only when it packs at least this much denser
TURN_CHARTS = 200  # up to this many charts, each may be placed turned by 90 degrees (twice the skyline's work)
REPAIRS = 8  # overlap repairs (a fold's faces become charts of their own, then the atlas is repacked)
PROBES = 4  # densities tried above the bisection's answer (PROBE_STEP apart): feasibility is not monotone
SPLIT_SIDE = 0.5  # charts longer than this fraction of the atlas side are halved
WIDE_GUTTERS = (2, 4, 6, 8)  # extra gutter texels tried in turn, while the charts still fit at...
WIDE_GUTTER_LOSS = 0.97  # ...this factor of the narrowest gutter's density (texels per world unit)
LLOYD_STEPS = 1  # regrowths from the charts' centres (fewer, rounder charts)
HARD_ANGLE = 75.0  # no face's own normal further than this from its chart's axis (bounds the stretch)


def default_padding(texture_size: int) -> int:
    """Empty texels between charts: ``max(2, texture_size // 512)``."""
    return max(2, int(texture_size) // 512)


# -- public entry points -------------------------------------------------------------------------------
def unwrap(mesh, texture_size: int = 2048, padding: Optional[int] = None, method: str = "auto",
           max_angle: float = DEFAULT_MAX_ANGLE, progress: bool = False, timeout: Optional[float] = None) -> Mesh:
    """A copy of ``mesh`` (texgen :class:`~texgen.mesh.Mesh`, trimesh or path) with a fresh atlas.

    Args:
        texture_size: atlas resolution in texels (square), 2..16384.
        padding: empty texels between charts (default ``max(2, texture_size // 512)``); the
            charts method keeps them between the charts' bilinear footprints (and may widen them).
        method: "auto", "xatlas" or "charts" (see the module docstring).
        max_angle: charts method: largest angle, degrees in (0, 80], between a face's normal and
            its chart's axis; smaller = less stretch, more charts.
        progress: show a tqdm progress bar (stages, faces).
        timeout: xatlas in a child process only: seconds before it is stopped (TimeoutError).

    Returns a Mesh with ``uv`` float32 [T, 2], ``uv_idx`` int32 [F, 3] (UVs split at seams),
    ``pos``/``pos_idx`` unchanged, texture dropped. Raises ValueError on bad arguments and
    KeyboardInterrupt (child processes stopped) when interrupted.
    """
    m = load_mesh(mesh)
    texture_size = _check_int("texture_size", texture_size, 2, 16384)
    padding = default_padding(texture_size) if padding is None else _check_int("padding", padding, 0, 256)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not (isinstance(max_angle, (int, float)) and 0 < max_angle <= 80):
        raise ValueError(f"max_angle must be in (0, 80] degrees, got {max_angle!r}")
    auto = method == "auto"
    if auto:
        method = choose_method(m)
    uv = None
    if method == "xatlas" and m.num_faces <= XATLAS_INPROCESS_FACES:
        uv, uv_idx = _xatlas(m.pos, m.pos_idx, texture_size, padding)
    elif method == "xatlas":
        try:
            uv, uv_idx = _xatlas_child(m.pos, m.pos_idx, texture_size, padding, progress, timeout)
        except MeshError:
            if not auto:
                raise
            # xatlas's child died (it segfaults on some large meshes): auto falls back to charts
    if uv is None:
        uv, uv_idx = chart_atlas(m.pos, m.pos_idx, texture_size, padding, max_angle, progress)
    return m.copy(uv=uv, uv_idx=uv_idx, texture=None)


def choose_method(mesh: Mesh) -> str:
    """``method="auto"``'s choice: "xatlas" when every connected part of the mesh has at most
    :data:`XATLAS_MAX_FACES` faces (xatlas's cost grows faster than linearly with a part's size,
    not with the number of parts: 1M faces in 5000 small parts took it 14 s, one 200k-face part
    over 7 minutes), else "charts"."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if mesh.num_faces <= XATLAS_MAX_FACES:
        return "xatlas"
    if mesh.num_faces > XATLAS_MAX_PARTS_FACES:
        return "charts"
    f = np.asarray(mesh.pos_idx, np.int64)
    V = len(mesh.pos)
    g = coo_matrix((np.ones(2 * len(f)), (np.r_[f[:, 0], f[:, 1]], np.r_[f[:, 1], f[:, 2]])), shape=(V, V))
    _, comp = connected_components(g, directed=False)
    largest = int(np.bincount(comp[f[:, 0]]).max())
    return "xatlas" if largest <= XATLAS_MAX_FACES else "charts"


def mesh_uv_wrap(mesh, texture_size: int = 2048, padding: Optional[int] = None, method: str = "auto",
                 progress: bool = False):
    """Hunyuan3D-2's ``mesh_uv_wrap`` contract: a ``trimesh.Trimesh`` in, a Trimesh out whose
    vertices are split at UV seams and whose ``visual.uv`` holds the atlas (positions in the
    input's frame, faces in the input's order)."""
    import trimesh

    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"mesh must be a trimesh.Trimesh, got {type(mesh).__name__}")
    verts = np.asarray(mesh.vertices, np.float64)
    faces = np.asarray(mesh.faces, np.int64)
    if faces.size == 0:
        raise ValueError("mesh has no faces")
    # unwrap on the mesh's own (unwelded) vertices so the output keeps its vertex order per face
    m = Mesh(verts.astype(np.float32), faces.astype(np.int32), name="mesh_uv_wrap")
    res = unwrap(m, texture_size, padding, method, progress=progress)
    pairs = np.stack([faces.reshape(-1), res.uv_idx.reshape(-1).astype(np.int64)], 1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    out = trimesh.Trimesh(vertices=verts[uniq[:, 0]], faces=inverse.reshape(-1, 3), process=False)
    out.visual = trimesh.visual.TextureVisuals(uv=res.uv[uniq[:, 1]])
    return out


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _bar(progress: bool, desc: str, total=None, unit="it"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False, mininterval=0.25)


# -- xatlas, here or in a child process -------------------------------------------------------------------
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_xatlas_worker.py")


def _xatlas_result(faces: np.ndarray, vmap, idx, uv) -> Tuple[np.ndarray, np.ndarray]:
    vmap, idx = np.asarray(vmap, np.int64), np.asarray(idx, np.int64)
    if idx.shape != faces.shape or not np.array_equal(vmap[idx], np.asarray(faces, np.int64)):
        raise MeshError("xatlas changed the faces; cannot keep index buffers aligned")
    return np.asarray(uv, np.float32), idx.astype(np.int32)


def _xatlas(pos: np.ndarray, faces: np.ndarray, size: int, padding: int) -> Tuple[np.ndarray, np.ndarray]:
    from ._xatlas_worker import run_xatlas

    return _xatlas_result(faces, *run_xatlas(pos, faces, size, padding))



def _thread_budget() -> int:
    """CPUs the xatlas child may use: this process's torch thread count (what ``texgen batch``
    sizes per worker, and the compiled rasterizer follows) when torch is loaded, else all."""
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            return max(1, int(torch.get_num_threads()))
    return os.cpu_count() or 1


def _xatlas_child(pos: np.ndarray, faces: np.ndarray, size: int, padding: int, progress: bool,
                  timeout: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """xatlas in a child process (its C++ loop cannot see Ctrl-C): the child runs in its own
    session so a terminal's SIGINT reaches only us; on KeyboardInterrupt (or ``timeout``
    seconds) we kill it and re-raise (TimeoutError)."""
    with tempfile.TemporaryDirectory(prefix="texgen_xatlas_") as tmp:
        src, dst = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(src, pos=np.ascontiguousarray(pos, np.float32), faces=np.ascontiguousarray(faces, np.uint32),
                 size=size, padding=padding)
        t0 = time.monotonic()
        bar = _bar(progress, f"xatlas ({len(faces)} faces)", unit="s")
        proc = None
        try:
            # Ctrl-C held back while the child starts, so that it is never left without its handle
            masked = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if masked else None
            try:
                proc = subprocess.Popen([sys.executable, _WORKER, src, dst, str(_thread_budget())],
                                        stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            finally:
                if masked:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            while proc.poll() is None:
                time.sleep(0.05)
                bar.n = round(time.monotonic() - t0, 1)
                if progress:
                    bar.refresh()
                if timeout is not None and time.monotonic() - t0 > timeout:
                    raise TimeoutError(f"xatlas did not finish within {timeout:g} s")
        except BaseException:
            if proc is not None:
                proc.kill()
                proc.wait()
            raise
        finally:
            bar.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        if proc.returncode != 0:
            raise MeshError(f"xatlas failed (exit status {proc.returncode}): {err[-500:]}")
        with np.load(dst) as d:
            return _xatlas_result(faces, d["vmap"], d["idx"], d["uv"])


# -- the chart atlas -----------------------------------------------------------------------------------
def _face_geometry(p: np.ndarray, f: np.ndarray):
    cr = np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
    dbl = np.linalg.norm(cr, axis=1)
    n = cr / np.maximum(dbl, 1e-300)[:, None]
    return n, 0.5 * dbl


def _face_adjacency(f: np.ndarray, V: int):
    """CSR (indptr, indices) of faces sharing an edge (consecutive faces around a non-manifold
    edge are linked)."""
    F = len(f)
    e = np.stack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 1).reshape(-1, 2)
    key = np.minimum(e[:, 0], e[:, 1]) * V + np.maximum(e[:, 0], e[:, 1])
    order = np.argsort(key, kind="stable")
    ks = key[order]
    same = ks[1:] == ks[:-1]
    fa, fb = order[:-1][same] // 3, order[1:][same] // 3
    keep = fa != fb
    fa, fb = fa[keep], fb[keep]
    src = np.concatenate([fa, fb])
    dst = np.concatenate([fb, fa])
    o = np.lexsort((dst, src))
    indptr = np.zeros(F + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=F), out=indptr[1:])
    return indptr, dst[o]


def _grow_charts(n: np.ndarray, smooth: np.ndarray, face_axis: np.ndarray, seeds: np.ndarray, seed_axes: np.ndarray,
                 indptr: np.ndarray, indices: np.ndarray, cos_max: float, cos_hard: float, bar):
    """Region growing, breadth first: from ``seeds`` (in order, with ``seed_axes``), then from
    every face still free (in face order, axis ``face_axis``). A face joins when its smoothed
    normal is within the cone ``cos_max`` of the chart's axis and its own normal within
    ``cos_hard``. Returns (label int64 [F], chart axes [C, 3]). Python loop: ~1 us per adjacency,
    interruptible between faces."""
    F = len(n)
    label = [-1] * F
    # flat float lists: building them is ~10x cheaper than lists of rows
    nl = n.ravel().tolist()
    sl = smooth.ravel().tolist()
    fl = face_axis.ravel().tolist()
    ip = indptr.tolist()
    ix = indices.tolist()
    axes = []
    done = 0
    order = [(int(s), tuple(a)) for s, a in zip(seeds.tolist(), seed_axes.tolist())]
    for s, axis in itertools.chain(order, ((s, None) for s in range(F))):
        if label[s] >= 0:
            continue
        if axis is None or nl[3 * s] * axis[0] + nl[3 * s + 1] * axis[1] + nl[3 * s + 2] * axis[2] < cos_hard:
            axis = (fl[3 * s], fl[3 * s + 1], fl[3 * s + 2])
        ax, ay, az = axis
        c = len(axes)
        axes.append(axis)
        label[s] = c
        queue = [s]
        for face in queue:
            for k in range(ip[face], ip[face + 1]):
                nb = ix[k]
                if label[nb] < 0:
                    j = 3 * nb
                    if sl[j] * ax + sl[j + 1] * ay + sl[j + 2] * az >= cos_max:
                        if nl[j] * ax + nl[j + 1] * ay + nl[j + 2] * az >= cos_hard:
                            label[nb] = c
                            queue.append(nb)
        done += len(queue)
        if done >= 50000:
            bar.update(done)
            done = 0
    bar.update(done)
    return np.asarray(label, np.int64), np.asarray(axes, np.float64).reshape(-1, 3)


def _charts(p: np.ndarray, f: np.ndarray, n: np.ndarray, area: np.ndarray, max_angle: float, bar):
    """Chart label per face and each chart's axis (every face within HARD_ANGLE of it)."""
    from scipy.sparse import csr_matrix

    F = len(f)
    indptr, indices = _face_adjacency(f, len(p))
    # normals that choose charts: averaged over neighbours SMOOTH_STEPS times (area weighted) to
    # see through noise, but never across a crease sharper than 60 degrees (box edges stay sharp)
    src = np.repeat(np.arange(F), np.diff(indptr))
    w = (np.einsum("ij,ij->i", n[src], n[indices]) > 0.5).astype(np.float64)
    adj = csr_matrix((w, indices, indptr), shape=(F, F))
    sm = n * area[:, None]
    for _ in range(SMOOTH_STEPS):
        sm = sm + adj @ sm
    ln = np.linalg.norm(sm, axis=1)
    smooth = np.where(ln[:, None] > 0, sm / np.maximum(ln, 1e-300)[:, None], n)
    cos_max = math.cos(math.radians(max_angle))
    cos_hard = math.cos(math.radians(HARD_ANGLE))
    # a free face whose own normal strays too far from its smoothed one seeds along its own
    face_axis = smooth.copy()
    own = np.einsum("ij,ij->i", n, smooth) < cos_hard
    face_axis[own] = n[own]
    empty = np.zeros(0, np.int64)
    label, axes = _grow_charts(n, smooth, face_axis, empty, np.zeros((0, 3)), indptr, indices, cos_max, cos_hard,
                               bar)
    for _ in range(LLOYD_STEPS):
        # Lloyd step (as in variational shape approximation): regrow from each chart's most
        # central face (smoothed normal nearest its mean normal) around that mean, largest first
        C = len(axes)
        mean = np.stack([np.bincount(label, (n * area[:, None])[:, k], C) for k in range(3)], 1)
        lm = np.linalg.norm(mean, axis=1)
        mean = np.where(lm[:, None] > 1e-30, mean / np.maximum(lm, 1e-300)[:, None], axes)
        score = np.einsum("ij,ij->i", smooth, mean[label])
        best = np.lexsort((np.arange(F), -score, label))  # per chart: highest score, then lowest index
        starts = np.searchsorted(label[best], np.arange(C))
        seeds = best[starts]
        chart_area = np.bincount(label, area, C)
        rank = np.lexsort((np.arange(C), -chart_area))
        bar.reset(total=F)
        label, axes = _grow_charts(n, smooth, face_axis, seeds[rank], mean[rank], indptr, indices, cos_max,
                                   cos_hard, bar)
    label, axes = _absorb_small(label, axes, n, indptr, indices, cos_hard)
    return label, len(axes), axes


def _absorb_small(label, axes, n, indptr, indices, cos_hard, rounds: int = 3):
    """Faces of charts of at most SMALL_CHART faces (noise the growth could not take) join an
    adjacent bigger chart whose axis is within HARD_ANGLE of their own normal: noisy meshes
    otherwise make tens of thousands of one-face charts, each with its own gutter."""
    F = len(label)
    src = np.repeat(np.arange(F), np.diff(indptr))
    for _ in range(rounds):
        cnt = np.bincount(label, minlength=len(axes))
        small = cnt[label] <= SMALL_CHART
        sel = small[src] & ~small[indices]
        sel &= np.einsum("ij,ij->i", n[src], axes[label[indices]]) >= cos_hard
        if not sel.any():
            break
        faces, first = np.unique(src[sel], return_index=True)  # each face: its first such neighbour
        label = label.copy()
        label[faces] = label[indices[sel]][first]
    used, label = np.unique(label, return_inverse=True)
    return label.astype(np.int64), axes[used]


def _chart_frames(label: np.ndarray, nchart: int, n: np.ndarray, area: np.ndarray, seed_axis: np.ndarray):
    """Per chart a right-handed frame (t1, t2, axis): axis = area-weighted mean normal, or the
    seed's axis (every face is within HARD_ANGLE of it) when some face is steeper than that to
    the mean: each face's stretch anisotropy is at most 1 / cos(HARD_ANGLE)."""
    w = n * area[:, None]
    mean = np.stack([np.bincount(label, w[:, k], nchart) for k in range(3)], 1)
    ln = np.linalg.norm(mean, axis=1)
    axis = np.where(ln[:, None] > 1e-30, mean / np.maximum(ln, 1e-300)[:, None], seed_axis)
    d = np.einsum("ij,ij->i", n, axis[label])
    dmin = np.full(nchart, np.inf)
    np.minimum.at(dmin, label, np.where(area > 0, d, np.inf))
    bad = dmin < math.cos(math.radians(HARD_ANGLE)) - 1e-9
    axis[bad] = seed_axis[bad]
    helper = np.where((np.abs(axis[:, 0]) < 0.9)[:, None], [[1.0, 0, 0]], [[0, 1.0, 0]])
    t1 = np.cross(helper, axis)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(axis, t1)
    return t1, t2


def _project(p: np.ndarray, f: np.ndarray, label: np.ndarray, nchart: int, t1: np.ndarray, t2: np.ndarray):
    """UV vertices = distinct (chart, position) pairs, chart-major; 2D coords in world units,
    rotated to each chart's principal axes (major axis along u) and shifted to start at 0."""
    V = len(p)
    key = (label[:, None] * V + f).reshape(-1)
    ukey, inv = np.unique(key, return_inverse=True)
    uv_idx = inv.reshape(-1, 3)
    vc, vv = ukey // V, ukey % V
    x = np.einsum("ij,ij->i", p[vv], t1[vc])
    y = np.einsum("ij,ij->i", p[vv], t2[vc])
    cnt = np.bincount(vc, minlength=nchart).astype(np.float64)
    mx = np.bincount(vc, x, nchart) / cnt
    my = np.bincount(vc, y, nchart) / cnt
    dx, dy = x - mx[vc], y - my[vc]
    sxx, syy, sxy = (np.bincount(vc, a, nchart) for a in (dx * dx, dy * dy, dx * dy))
    pca = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    starts = np.searchsorted(vc, np.arange(nchart))

    def rotated(ang):
        c, s = np.cos(ang)[vc], np.sin(ang)[vc]
        u, v = c * dx + s * dy, -s * dx + c * dy
        lo_u, lo_v = np.minimum.reduceat(u, starts), np.minimum.reduceat(v, starts)
        hi_u, hi_v = np.maximum.reduceat(u, starts), np.maximum.reduceat(v, starts)
        return u, v, lo_u, lo_v, hi_u, hi_v

    # smallest bounding box over rotations in 5-degree steps from the principal axes (a square
    # chart has no principal axis; a rotated square wastes half its box)
    best_area, ang = np.full(nchart, np.inf), pca.copy()
    for k in range(ORIENTATIONS):
        a = pca + k * (0.5 * math.pi / ORIENTATIONS)
        _, _, lu, lv, hu, hv = rotated(a)
        box = (hu - lu) * (hv - lv)
        better = box < best_area * (1 - 1e-9)
        best_area[better], ang[better] = box[better], a[better]
    _, _, lu, lv, hu, hv = rotated(ang)
    ang = np.where(hv - lv > hu - lu, ang + 0.5 * math.pi, ang)  # the longer side along u
    u, v, umin, vmin, umax, vmax = rotated(ang)
    uv = np.stack([u - umin[vc], v - vmin[vc]], 1)
    return uv, uv_idx, vc, np.stack([umax - umin, vmax - vmin], 1)


def _outline(uvw: np.ndarray, uv_idx: np.ndarray, label: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(UV edges int64 [E, 2], their chart [E]) that bound the union of each chart's triangles:
    edges of one face (the chart's boundary) and every edge of a face that is not positively
    oriented in ``uvw`` (where a projection folds, the image's boundary runs along such faces).
    Over a column, a chart's lowest and highest points lie on these edges, so their bounding boxes
    give the same conservative profile as all triangles' (:func:`_profiles`) at a fraction of the cost."""
    e = np.stack([uv_idx[:, [0, 1]], uv_idx[:, [1, 2]], uv_idx[:, [2, 0]]], 1).reshape(-1, 2).astype(np.int64)
    T = int(uv_idx.max()) + 1 if uv_idx.size else 1
    _, inv, cnt = np.unique(np.minimum(e[:, 0], e[:, 1]) * T + np.maximum(e[:, 0], e[:, 1]),
                            return_inverse=True, return_counts=True)
    t = uvw[uv_idx]
    d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    flat = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0] <= 0
    keep = (cnt[inv.reshape(-1)] == 1) | np.repeat(flat, 3)
    return e[keep], np.repeat(label, 3)[keep]


def _profiles(tri_xy: np.ndarray, tri_chart: np.ndarray, nchart: int, wc: np.ndarray):
    """Per chart and texel column (cell ``[c, c + 1]`` of its local frame), the lowest and highest
    y its triangles (or outline segments, :func:`_outline`) reach (their bounding boxes:
    conservative). ``tri_xy`` [N, K, 2] local texel coordinates; returns flat (bottom, top) arrays
    indexed ``offset[chart] + c``."""
    xmin, xmax = tri_xy[..., 0].min(1), tri_xy[..., 0].max(1)
    ymin, ymax = tri_xy[..., 1].min(1), tri_xy[..., 1].max(1)
    c0 = np.floor(xmin).astype(np.int64)
    ncell = np.floor(xmax).astype(np.int64) - c0 + 1
    offset = np.zeros(nchart + 1, np.int64)
    np.cumsum(wc, out=offset[1:])
    rep = np.repeat(np.arange(len(c0)), ncell)
    within = np.arange(len(rep)) - np.repeat(np.cumsum(ncell) - ncell, ncell)
    col = offset[tri_chart[rep]] + np.minimum(c0[rep] + within, wc[tri_chart[rep]] - 1)
    bottom = np.full(offset[-1], np.inf)
    top = np.full(offset[-1], -np.inf)
    np.minimum.at(bottom, col, ymin[rep])
    np.maximum.at(top, col, ymax[rep])
    return bottom, top, offset


def _skyline(bottom, top, offset, wc, hc, width: int, height: int, order: np.ndarray, gap: int,
             turns: int = 0, slack: int = 0):
    """Place charts (column profiles, see :func:`_profiles`) on a per-column skyline in ``order``,
    each at its lowest then leftmost integer position. Every column a chart touches, widened by
    ``gap`` columns each side, is raised to the chart's top + ``gap``, so two charts' geometry
    stays ``gap`` texels apart (Chebyshev). ``turns`` 1 or 2: the arrays hold 2C charts, chart
    ``C + i`` being chart ``i`` turned by 90 degrees; 1: each chart is placed in whichever
    orientation ends lower (its top; then the lower, the further left, unturned on a tie); 2: turned
    only where it does not fit unturned. Returns (x, y, turn, ok, height used) for the C charts;
    ok False: one did not fit."""
    from scipy.ndimage import maximum_filter1d

    # every chart's top profile dilated by `gap` columns each side (w + 2 gap columns), all at once:
    # the profiles laid end to end, each with `gap` empty columns either side, so no window of
    # 2 gap + 1 columns reaches two charts
    seg = np.concatenate([[0], np.cumsum(wc + 2 * gap)])
    flat = np.full(int(seg[-1]), -np.inf)
    flat[np.repeat(seg[:-1] + gap - offset[:-1], wc) + np.arange(int(offset[-1]))] = top
    tt_all = maximum_filter1d(flat, 2 * gap + 1, mode="constant", cval=-np.inf) if gap else flat
    H = np.full(width, -np.inf)
    used = 0.0
    C = len(order)
    x = np.zeros(C, np.int64)
    y = np.zeros(C, np.int64)
    turn = np.zeros(C, bool)
    # a column without geometry (between disconnected pieces) has bottom +inf, top -inf
    bb_all = bottom
    for i in order.tolist():
        best = None
        for j in ((i, i + C) if turns else (i,)):
            if turns == 2 and best is not None:
                break
            w = int(wc[j])
            if w > width or hc[j] > height:
                continue
            o = int(offset[j])
            bb = bb_all[o:o + w]
            n = width - w + 1
            m = H[:n] - bb[0]
            for c in range(1, w):  # w contiguous passes: faster than a strided window max
                np.maximum(m, H[c:c + n] - bb[c], out=m)
            np.ceil(m, out=m)
            np.maximum(m, 0, out=m)  # the floor; -inf (nothing below) too
            xi = int(np.argmin(m))
            if slack:  # the leftmost position at most `slack` texels above the lowest
                xi = int(np.argmax(m <= m[xi] + slack))
            yi = int(m[xi])
            key = (yi + hc[j], yi, xi)  # the orientation whose top ends lower, then the lower, the further left
            if yi + hc[j] <= height and (best is None or key < best[0]):
                best = (key, xi, j)
        if best is None:
            return x, y, turn, False, used
        (_, yi, _), xi, j = best
        tt = tt_all[seg[j]:seg[j + 1]]  # w + 2 gap columns from xi - gap
        lo = xi - gap
        a, z = max(lo, 0), min(lo + len(tt), width)
        np.maximum(H[a:z], yi + tt[a - lo:z - lo] + gap, out=H[a:z])
        x[i], y[i], turn[i] = xi, yi, j != i
        used = max(used, yi + hc[j])
    return x, y, turn, True, used


def _pack(uvw: np.ndarray, uv_idx: np.ndarray, label: np.ndarray, size_w: np.ndarray, size: int, padding: int, bar,
          previous: Optional[Tuple[float, int]] = None, min_scale: Optional[float] = None):
    """Largest texel density (texels per world unit) at which the charts fit, with a gutter of
    ``padding`` texels between bilinear footprints, then widened by :data:`WIDE_GUTTERS` in turn
    while the charts fit at :data:`WIDE_GUTTER_LOSS` of that density. ``uvw``
    [T, 2] chart-local coordinates (world units, each chart's minimum at 0), ``size_w`` [C, 2]
    chart extents; ``previous``: (density, extra gutter) of an earlier packing of nearly the same
    charts, tried first (a repair adds a few one-face charts); ``min_scale``: a density that must fit
    (None is returned at once when it does not). Returns (scale, x0, y0, turn, extra
    gutter) with chart origins in texel coordinates; ``turn`` (bool [C]): the chart is turned by
    90 degrees, ``(x, y) -> (y, width - x)`` (at most :data:`TURN_CHARTS` charts are turned)."""
    C = len(size_w)
    seg, seg_chart = _outline(uvw, uv_idx, label)
    seg_w = uvw[seg]  # [E, 2, 2]: the segments that bound the charts (profiles cost O(boundary))
    # many small charts pack alike at any density and in any order (and each attempt costs more):
    # one order, no probes
    orders, probes = (ORDERS[:1], 0) if C > MANY_CHARTS else (ORDERS, PROBES)
    turns = C <= TURN_CHARTS

    def attempt(scale, gap):
        margin = (gap + 1) // 2  # charts at opposite borders are neighbours under wrapping lookups
        span = size - 1 - 2 * margin  # texel coordinates [margin, size - 1 - margin]
        if C * gap * gap > span * span:
            return None, None, None, False, math.inf
        ext = size_w * scale
        tri = seg_w * scale
        if turns:  # charts C..2C-1: the same charts turned by 90 degrees, (x, y) -> (y, width - x)
            tri = np.concatenate([tri, np.stack([tri[..., 1], ext[seg_chart, 0][:, None] - tri[..., 0]], -1)])
            ext = np.concatenate([ext, ext[:, ::-1]])
        wc = np.floor(ext[:, 0]).astype(np.int64) + 1
        hc = ext[:, 1]
        bottom, top, offset = _profiles(tri, np.concatenate([seg_chart, seg_chart + C]) if turns else seg_chart,
                                        len(ext), wc)
        keys = {"height": (-wc[:C], -np.ceil(hc[:C])), "width": (-np.ceil(hc[:C]), -wc[:C])}
        # the next order / turning rule only when one fails: unturned, turned where that ends lower,
        # turned only where unturned does not fit (leftmost within SLACK texels of the lowest)
        for name, mode in itertools.product(orders, (0, 1, 2) if turns else (0,)):
            order = np.lexsort((np.arange(C),) + keys[name])
            x, y, turn, ok, used = _skyline(bottom, top, offset, wc, hc, span, span, order, gap, mode,
                                            SLACK * (mode == 2))
            if ok:
                return x + margin, y + margin, turn, True, used + margin
        return None, None, None, False, used + margin

    gap = padding + BILINEAR_GAP
    span = size - 1 - 2 * ((gap + 1) // 2)
    while gap > padding + 1 and C * (gap + 1) ** 2 > 0.5 * span * span:
        gap -= 1  # so many charts that bilinear-safe gutters would fill half the atlas: padding + 1
    if previous is not None:
        for k in range(3):
            s = previous[0] / PROBE_STEP ** k
            x, y, t, ok, _ = attempt(s, gap + previous[1])
            if ok:
                return s, x, y, t, previous[1]
    span = size - 1 - 2 * ((gap + 1) // 2)
    area = float((size_w[:, 0] * size_w[:, 1]).sum())
    s = math.sqrt(0.6 * span * span / max(area, 1e-30))
    lo, hi, best = 0.0, None, None
    if min_scale is not None:
        x, y, t, ok, used = attempt(min_scale, gap)
        if not ok:
            return None
        lo, best = min_scale, (min_scale, x, y, t)
        s = min_scale * min(max(math.sqrt(span / max(used, 1e-9)) * 0.995, 1.02), 1.5)
    for _ in range(10):  # bisection on the density, 2% apart (height grows ~ density^2)
        x, y, t, ok, used = attempt(s, gap)
        if ok:
            lo, best = s, (s, x, y, t)
        else:
            hi = s
        if hi is not None and lo > 0 and hi / lo < 1.02:
            break
        if hi is None:
            s *= min(max(math.sqrt(span / max(used, 1e-9)) * 0.995, 1.02), 1.5)
        elif lo == 0.0:
            s /= 1.15
        else:
            s = math.sqrt(lo * hi)
    for _ in range(40):  # only when even the first guesses failed: halve until it fits...
        if best is not None:
            break
        s *= 0.5
        x, y, t, ok, _ = attempt(s, gap)
        if ok:
            best = (s, x, y, t)
            for k in range(1, 6):  # ...then bisect back up towards the density that failed
                u = best[0] * 2 ** (0.5 ** k)
                x, y, t, ok, _ = attempt(u, gap)
                if ok:
                    best = (u, x, y, t)
    if best is None:  # the tiny charts' footprints alone fill the atlas at any density
        raise ValueError(f"{C} charts cannot fit a {size}^2 atlas with padding {padding}: "
                         "use a larger texture_size, a smaller padding or a larger max_angle")
    # feasibility is not monotone in the density (the order and the rounding of the footprints
    # change with it): probe a few densities above the bisection's answer, keep the largest fit
    base = best[0]
    for k in range(1, probes + 1):
        x, y, t, ok, _ = attempt(base * PROBE_STEP ** k, gap)
        if ok:
            best = (base * PROBE_STEP ** k, x, y, t)
    best = best + (0,)
    # wider gutters, narrowest first, while they fit at WIDE_GUTTER_LOSS of that density (one
    # failed attempt ends it: many small charts, where gutters cost most, stop at the first)
    floor, wide = best[0] * WIDE_GUTTER_LOSS, None
    for extra in sorted(WIDE_GUTTERS):
        x, y, t, ok, _ = attempt(floor, gap + extra)
        if not ok:
            break
        wide = (floor, x, y, t, extra)
    if wide is not None:
        best = wide
        for k in range(1, 3):
            x, y, t, ok, _ = attempt(floor * PROBE_STEP ** k, gap + wide[4])
            if ok:
                best = (floor * PROBE_STEP ** k, x, y, t, wide[4])
    return best


def _place(uvw: np.ndarray, vc: np.ndarray, size_w: np.ndarray, scale: float, x0, y0, turn) -> np.ndarray:
    """Texel coordinates [T, 2] of the UV vertices (chart ``vc``) packed by :func:`_pack`."""
    loc = uvw * scale
    t = turn[vc]
    loc[t] = np.stack([loc[t, 1], size_w[vc[t], 0] * scale - loc[t, 0]], 1)
    return loc + np.stack([x0, y0], 1)[vc]


def uv_overlap_faces(uv: np.ndarray, uv_idx: np.ndarray, size: int) -> Tuple[np.ndarray, int]:
    """(faces that share a texel with another face, int64 [K]; texels covered by two or more
    faces) of the UV layout at ``size``^2 texels (:func:`texgen.uvcheck.overlap_winners`: two
    render_npu passes with depth ordered by face index up, then down)."""
    from .uvcheck import overlap_winners

    a, b = overlap_winners(uv, uv_idx, size)
    diff = (a != b).numpy()
    faces = np.unique(np.concatenate([a.numpy()[diff], b.numpy()[diff]]).astype(np.int64) - 1)
    return faces[faces >= 0], int(diff.sum())


def uv_overlap_texels(mesh: Mesh, size: int) -> int:
    """Texels of a ``size``^2 atlas covered by two or more of ``mesh``'s UV triangles."""
    return uv_overlap_faces(mesh.uv, mesh.uv_idx, size)[1]


def _split_rounds(p, f, n, area, label, nchart, seed_axis, size: int, max_side: Optional[float] = None):
    """Halve (across the major axis, at the median face) every chart whose longer side would
    exceed ``max_side`` of the atlas at a ~70% fill: one dominant, elongated chart leaves most of
    a square atlas empty. Only such charts: every cut is a seam, and seams cost round-trip PSNR.
    Yields (label, nchart, seed_axis): the charts as given, then after each round of halving that
    cut something (at most 4 rounds); :func:`chart_atlas` keeps the one that packs densest."""
    max_side = SPLIT_SIDE if max_side is None else max_side
    yield label, nchart, seed_axis
    for _ in range(4):
        t1, t2 = _chart_frames(label, nchart, n, area, seed_axis)
        uvw, uv_idx, _, size_w = _project(p, f, label, nchart, t1, t2)
        scale = math.sqrt(0.7 * size * size / max(float((size_w[:, 0] * size_w[:, 1]).sum()), 1e-30))
        nf = np.bincount(label, minlength=nchart)
        big = np.flatnonzero((size_w[:, 0] * scale > max_side * size) & (nf > 1))
        if len(big) == 0:
            break
        cu = uvw[uv_idx, 0].mean(1)  # face centroid along its chart's major axis
        sel, new = [], []
        for i, c in enumerate(big.tolist()):
            fc = np.flatnonzero(label == c)
            order = fc[np.lexsort((fc, cu[fc]))]
            sel.append(order[len(order) // 2:])
            new.append(np.full(len(order) - len(order) // 2, nchart + i))
        sel, new = np.concatenate(sel), np.concatenate(new)
        label = label.copy()
        label[sel] = new
        seed_axis = np.concatenate([seed_axis, seed_axis[big]])
        nchart += len(big)
        yield label, nchart, seed_axis


def _split_big(p, f, n, area, label, nchart, seed_axis, size: int, padding: int, max_side: Optional[float] = None):
    """(label, nchart, seed_axis) after choosing how far to halve the big charts
    (:func:`_split_rounds`), with the (density, extra gutter) of its packing when candidates were
    packed to choose (None otherwise). Up to :data:`TURN_CHARTS` charts every candidate is packed
    and the densest kept, fewer cuts unless more are :data:`SPLIT_GAIN` denser (a thin shell's two
    plates halved: 4 halves fill a square, 3 stacked and 1 turned, denser than 8 quarters in a
    3 x 3 grid with a slot empty); above that every big chart is halved."""
    cands = list(_split_rounds(p, f, n, area, label, nchart, seed_axis, size, max_side))
    if len(cands) == 1 or cands[-1][1] > TURN_CHARTS:
        return cands[-1] + (None,)
    # score: density / SPLIT_GAIN^rounds; the fully halved first, then the others only as far as
    # they fit at the density that would beat the best score (one attempt when they do not)
    best, score = None, 0.0
    K = len(cands) - 1
    for k in [K] + list(range(K)):
        cand = cands[k]
        t1, t2 = _chart_frames(cand[0], cand[1], n, area, cand[2])
        uvw, uv_idx, _, size_w = _project(p, f, cand[0], cand[1], t1, t2)
        need = score * SPLIT_GAIN ** k * (1 + 1e-9) if best is not None else None
        res = _pack(uvw, uv_idx, cand[0], size_w, size, padding, None, min_scale=need)
        if res is not None and res[0] / SPLIT_GAIN ** k > score:
            best, score = cand + ((res[0], res[4]),), res[0] / SPLIT_GAIN ** k
    return best


def chart_atlas(pos: np.ndarray, faces: np.ndarray, texture_size: int = 2048, padding: Optional[int] = None,
                max_angle: float = DEFAULT_MAX_ANGLE, progress: bool = False,
                verify: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """The chart atlas of ``unwrap(method="charts")`` on raw buffers: ``pos`` [V, 3], ``faces``
    [F, 3] -> (``uv`` float32 [T, 2], ``uv_idx`` int32 [F, 3])."""
    padding = default_padding(texture_size) if padding is None else int(padding)
    p = np.asarray(pos, np.float64)
    f = np.asarray(faces, np.int64)
    F = len(f)
    bar = _bar(progress, f"unwrap ({F} faces)", total=F, unit="face")
    try:
        n, area = _face_geometry(p, f)
        label, nchart, seed_axis = _charts(p, f, n, area, max_angle, bar)
        bar.set_description("unwrap: pack")
        label, nchart, seed_axis, packed = _split_big(p, f, n, area, label, nchart, seed_axis, texture_size,
                                                      padding)
        for attempt in range(REPAIRS):
            t1, t2 = _chart_frames(label, nchart, n, area, seed_axis)
            uvw, uv_idx, vc, size_w = _project(p, f, label, nchart, t1, t2)
            scale, x0, y0, turn, extra = _pack(uvw, uv_idx, label, size_w, texture_size, padding, bar, packed)
            packed = (scale, extra)
            tex = _place(uvw, vc, size_w, scale, x0, y0, turn)
            uv = (tex / (texture_size - 1)).astype(np.float32)
            if not verify:
                break
            bad_faces, _ = uv_overlap_faces(uv, uv_idx, texture_size)
            if len(bad_faces) == 0:
                break
            # the faces that share a texel (a fold or branch point of the projection, duplicate
            # faces) leave their charts, one chart each: a triangle cannot overlap itself
            label = label.copy()
            seed_axis = np.concatenate([seed_axis, seed_axis[label[bad_faces]]])
            label[bad_faces] = nchart + np.arange(len(bad_faces))
            used, label = np.unique(label, return_inverse=True)
            seed_axis, nchart = seed_axis[used], len(used)
        else:
            raise MeshError(f"the chart atlas still overlaps after {attempt + 1} repairs")
    finally:
        bar.close()
    return uv, uv_idx.astype(np.int32)


# -- quality measures ---------------------------------------------------------------------------------
def atlas_stats(mesh: Mesh, size: int) -> Dict[str, float]:
    """Quality of ``mesh``'s atlas at ``size``^2 texels.

    Returns ``use`` (fraction of texel centres inside some UV triangle, rasterized with
    render_npu), ``overlap`` (texels covered by two or more triangles), ``l2`` / ``linf``
    (Sander et al. 2001 texture stretch of the map UV -> surface: area-weighted RMS of the
    singular values, and their maximum, normalised so an isometry up to scale gives 1),
    ``seam`` (total 3D length of the edges cut by the atlas, over the mesh's total edge length)
    and ``charts`` (UV-connected components)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from .uvcheck import overlap_winners

    a, b = overlap_winners(mesh.uv, mesh.uv_idx, size)
    overlap = int((a != b).sum())
    use = float((a > 0).float().mean())

    p = np.asarray(mesh.pos, np.float64)
    f = np.asarray(mesh.pos_idx, np.int64)
    t = np.asarray(mesh.uv, np.float64)
    ti = np.asarray(mesh.uv_idx, np.int64)
    q1, q2, q3 = p[f[:, 0]], p[f[:, 1]], p[f[:, 2]]
    (s1, t1), (s2, t2), (s3, t3) = t[ti[:, 0]].T, t[ti[:, 1]].T, t[ti[:, 2]].T
    a2d = ((s2 - s1) * (t3 - t1) - (s3 - s1) * (t2 - t1)) / 2
    a3d = np.linalg.norm(np.cross(q2 - q1, q3 - q1), axis=1) / 2
    ok = np.abs(a2d) > 1e-20
    den = np.where(ok, 2 * a2d, 1.0)[:, None]
    Ss = (q1 * (t2 - t3)[:, None] + q2 * (t3 - t1)[:, None] + q3 * (t1 - t2)[:, None]) / den
    St = (q1 * (s3 - s2)[:, None] + q2 * (s1 - s3)[:, None] + q3 * (s2 - s1)[:, None]) / den
    a, c = (Ss * Ss).sum(1), (St * St).sum(1)
    b = (Ss * St).sum(1)
    root = np.sqrt(np.maximum((a - c) ** 2 + 4 * b * b, 0))
    gmax = np.sqrt(np.maximum(0.5 * (a + c + root), 0))
    l2_t = np.sqrt(0.5 * (a + c))
    A, A2 = a3d[ok].sum(), np.abs(a2d[ok]).sum()
    norm = math.sqrt(A2 / A) if A > 0 else 1.0
    l2 = math.sqrt(float((l2_t[ok] ** 2 * a3d[ok]).sum()) / A) * norm if A > 0 else float("nan")
    linf = float(gmax[ok & (a3d > 0)].max()) * norm if (ok & (a3d > 0)).any() else float("nan")
    if (~ok & (a3d > 1e-12 * max(A, 1e-30))).any():
        linf = float("inf")  # a surface triangle collapsed to a point or line in UV
    # seams: position edges whose two faces use different UV vertices
    e = np.stack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 1).reshape(-1, 2)
    eu = np.stack([ti[:, [0, 1]], ti[:, [1, 2]], ti[:, [2, 0]]], 1).reshape(-1, 2)
    flip = e[:, 0] > e[:, 1]
    ek = np.where(flip[:, None], e[:, ::-1], e)
    euk = np.where(flip[:, None], eu[:, ::-1], eu)
    V = len(p)
    key = ek[:, 0] * V + ek[:, 1]
    length = np.linalg.norm(p[ek[:, 0]] - p[ek[:, 1]], axis=1)
    uk, first = np.unique(key, return_index=True)
    pairs = np.unique(np.stack([key, euk[:, 0], euk[:, 1]], 1), axis=0)
    n_uv = np.bincount(np.searchsorted(uk, pairs[:, 0]), minlength=len(uk))
    seam = float(length[first][n_uv > 1].sum()) / max(float(length[first].sum()), 1e-300)
    T = len(t)
    g = coo_matrix((np.ones(2 * len(ti)), (np.concatenate([ti[:, 0], ti[:, 1]]), np.concatenate([ti[:, 1], ti[:, 2]]))),
                   shape=(T, T))
    _, lab = connected_components(g, directed=False)
    charts = len(np.unique(lab[ti[:, 0]]))
    return {"use": use, "overlap": overlap, "l2": l2, "linf": linf, "seam": seam, "charts": charts}
