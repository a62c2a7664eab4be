"""AscendC backend: the fine-raster step as an AscendC kernel (ascendc_kernels/), with triangle setup
and screen binning done by torch ops.

Pipeline (every step is torch tensor code, so it runs where the tensors are):

1. setup: clip, project, snap to 1/256 pixel, exact integer edge equations, depth, perspective
   coefficients -- the torch backend's setup (``render_npu.backends.torch.setup``), converted to the
   kernel's records and pixel boxes, a :class:`PieceTables`. ``setup="reference"`` builds the same
   tables from the reference's own functions (exact, slow; tests and debugging).
2. binning: which 16 x 16 screen tiles each piece's pixel box touches -- :class:`TileBins`.
3. packing into the kernel's input format (:func:`canonical_tables`, :func:`pack_tiles`; the
   format is documented in ascendc_kernels/README.md and mirrored from
   ascendc_kernels/fine_raster_format.h).
4. fine raster: the AscendC kernel -- on an Ascend NPU through the torch_npu custom op
   ``torch.ops.render_npu_ascendc.fine_raster`` (built by ascendc_kernels/CMakeLists.txt with
   the CANN toolkit), or on the host through ``render_npu._C.ascendc_host_fine_raster``, the same
   kernel source compiled against ascendc_kernels/host/ (an emulation of the AscendC API).
5. unpacking the per-tile planes into ``rast [B, H, W, 4]`` and ``depth [B, H, W]``.

:func:`status` says whether the device path is usable; it never is without torch_npu and the
custom-op library. :func:`rasterize_host` runs the whole pipeline on CPU tensors with the
host-emulated kernel; tests/test_ascendc_host.py checks it against the reference on the goldens.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from .. import resolve
from ..contract import HALF, SUBPIXEL, is_top_left, pixel_span, screen_transform, snap

# ---- kernel format (ascendc_kernels/fine_raster_format.h) -----------------------------------------
TILE = 16  # tile edge, pixels
TILE_PIXELS = TILE * TILE
PLANES = 5  # b0, b1, b2, id + 1, depth
OUT_PER_TILE = PLANES * TILE_PIXELS
TILE_DESC_WORDS = 8
REC_I_WORDS = 12  # int64: A[3], B[3], C[3], bias[3]
REC_F_WORDS = 16  # float32: q[3], c[9], id, (2 unused), 1/area
LIST_ALIGN = 8  # list segments start on 32-byte boundaries

OP_NAMESPACE = "render_npu_ascendc"
# Must equal the m.def() string in ascendc_kernels/torch_npu_op.cpp (a test checks it).
OP_SCHEMA = ("fine_raster(Tensor coords, Tensor tiles, Tensor lists, Tensor rec_i, Tensor rec_f, int block_dim=0) "
             "-> Tensor")
OP_LIBRARY_ENV = "RENDER_NPU_ASCENDC_OPS"  # path of librender_npu_ascendc_ops.so (optional)


@dataclass
class PieceTables:
    """Set-up triangle pieces (a clipped face gives a fan of pieces) in (batch, face, fan) order, in
    the kernel's record layout: ``itab`` int64 [>= P, 12] = (A[3], B[3], C[3], bias[3]), edge i
    opposite vertex i, orientation normalised, covered iff A_i px + B_i py + C_i >= bias_i;
    ``ftab`` float32 [>= P, 16] = (q[3], c[9] row-major (piece vertex i, parent vertex k), id,
    zx, zy, 1/area); ``box`` int64 [P, 5] = (x0, y0, nx, ny, batch): the pixels whose centres lie
    in the piece's vertex bounding box, clamped to the image (non-empty)."""
    itab: torch.Tensor
    ftab: torch.Tensor
    box: torch.Tensor
    count: int


@dataclass
class TileBins:
    """(tile, piece) pairs, sorted by tile then piece. Tiles are numbered ``(b * TY + ty) * TX + tx``
    with ``TY = ceil(H / 16)``, ``TX = ceil(W / 16)``. ``tile``: int64 [L]; ``piece``: int64 [L]."""
    tile: torch.Tensor
    piece: torch.Tensor
    num_tiles: int
    tiles_x: int
    tiles_y: int


# ---- 1. setup -------------------------------------------------------------------------------------

def pieces_from_torch(inp) -> PieceTables:
    """The torch backend's setup (all faces at once, torch ops on the input device), converted to
    the kernel's records: one gather of the pieces in (batch, face, fan) order and a few
    element-wise ops, O(pieces). The torch backend's own tables are component-major (long rows
    vectorize there) and not laid out for per-row DMA, hence the conversion. Same arithmetic as
    the torch backend, so the two agree exactly on coverage; q1, q2 are rebuilt as q0 + (q_i - q0),
    exact when q_i and q0 are within a factor 2. (ascendc depends on torch, never the reverse.)"""
    from .torch import setup as ts

    dev = inp.pos.device
    pc = ts.setup_pieces(inp)
    if pc is None:
        return PieceTables(torch.zeros((0, REC_I_WORDS), dtype=torch.int64, device=dev),
                           torch.zeros((0, REC_F_WORDS), dtype=torch.float32, device=dev),
                           torch.zeros((0, 5), dtype=torch.int64, device=dev), 0)
    P = pc.count
    cand = pc.cand[:P]
    it = ts._cols(pc.itab, cand)
    # itab (NA, B, Cb, C) with E = B py - NA px + C, covered iff E >= C - Cb -> (A, B, C, bias)
    itab = torch.cat((-it[ts._I_NA], it[ts._I_B], it[ts._I_C], it[ts._I_C] - it[ts._I_CB])).t().contiguous()
    f = ts._cols(pc.ftab, cand)
    q0 = f[ts._R_Q0:ts._R_Q0 + 1]
    ftab = torch.cat((q0, q0 + f[ts._R_DQ], f[ts._R_C], f[ts._R_ID:ts._R_ID + 1], f[ts._R_ZX:ts._R_ZY + 1],
                      f[ts._R_INVAREA:ts._R_INVAREA + 1])).t().contiguous()
    box = torch.cat((ts._cols(pc.box, cand), pc.batch.index_select(0, cand)[None])).t().contiguous()
    return PieceTables(itab, ftab, box, P)


def tables_from_vertices(X: torch.Tensor, Y: torch.Tensor, q: torch.Tensor, coef: torch.Tensor, face: torch.Tensor,
                         batch: torch.Tensor, H: int, W: int) -> PieceTables:
    """Piece tables from snapped integer vertices (int64 [P, 3], non-zero area, |value| <= 2**29),
    vertex depths q float32 [P, 3], coefficients c_ik float [P, 3, 3], face and batch [P]: the
    reference's edge equations (reference.setup_piece) in torch int64 ops. Pieces whose box is off
    screen are kept (the kernel rejects them per tile); box is clamped to the image."""
    X, Y = X.long(), Y.long()
    P = X.shape[0]
    dev = X.device
    signed = (X[:, 1] - X[:, 0]) * (Y[:, 2] - Y[:, 0]) - (X[:, 2] - X[:, 0]) * (Y[:, 1] - Y[:, 0])
    s = torch.where(signed < 0, -1, 1)[:, None]
    Xa, Xb = torch.roll(X, -1, 1), torch.roll(X, -2, 1)  # edge i runs from vertex i+1 to i+2
    Ya, Yb = torch.roll(Y, -1, 1), torch.roll(Y, -2, 1)
    dx, dy = s * (Xb - Xa), s * (Yb - Ya)
    itab = torch.cat((-SUBPIXEL * dy, SUBPIXEL * dx, dx * (HALF - Ya) - dy * (HALF - Xa),
                      (~is_top_left(dx, dy)).long()), 1)
    wide = torch.float64 if dev.type in ("cpu", "cuda") else torch.float32
    c = coef.to(wide)
    c = c / c.abs().amax(dim=(1, 2), keepdim=True).clamp_min(torch.finfo(wide).tiny)  # max |c| = 1
    ftab = torch.zeros((P, REC_F_WORDS), dtype=torch.float32, device=dev)
    ftab[:, 0:3] = q.float()
    ftab[:, 3:12] = c.reshape(P, 9).float()
    ftab[:, 12] = face.float()
    ftab[:, 15] = (1.0 / signed.abs().to(wide)).float()
    x0, x1 = (t.clamp(0, W - 1) for t in pixel_span(X.amin(1), X.amax(1)))
    y0, y1 = (t.clamp(0, H - 1) for t in pixel_span(Y.amin(1), Y.amax(1)))
    box = torch.stack((x0, y0, (x1 - x0 + 1).clamp_min(1), (y1 - y0 + 1).clamp_min(1), batch.long()), 1)
    return PieceTables(itab, ftab, box, P)


def pieces_from_reference(pos: torch.Tensor, faces: torch.Tensor, H: int, W: int, viewport: str,
                          cull_backfaces: bool) -> PieceTables:
    """Setup by the reference's own functions (clip_triangle, screen_transform, setup_piece), one
    face at a time in numpy: exact and slow. For tests and debugging."""
    from . import reference as ref

    pos_np = pos.detach().cpu().numpy().astype(np.float32)
    faces_np = faces.cpu().numpy().astype(np.int64)
    ax, bx = screen_transform(W, viewport)
    ay, by = screen_transform(H, viewport)
    rows = {k: [] for k in ("X", "Y", "q", "coef", "face", "batch")}
    for b in range(pos_np.shape[0]):
        for f in range(faces_np.shape[0]):
            v = pos_np[b, faces_np[f]]
            if not np.all(np.isfinite(v)):
                continue
            poly = ref.clip_triangle(v)
            if len(poly) < 3:
                continue
            P = np.stack([p.pos for p in poly])
            beta = np.stack([p.beta for p in poly])
            with np.errstate(all="ignore"):
                Xn, Yn, qv = P[:, 0] / P[:, 3], P[:, 1] / P[:, 3], P[:, 2] / P[:, 3]
                fx, fy = snap(Xn, ax, bx), snap(Yn, ay, by)
            for i in range(1, len(poly) - 1):
                idx = [0, i, i + 1]
                if not (np.all(np.isfinite(fx[idx])) and np.all(np.isfinite(fy[idx]))
                        and np.all(np.isfinite(qv[idx]))):
                    continue
                if np.any(np.abs(fx[idx]) > 2 ** 29) or np.any(np.abs(fy[idx]) > 2 ** 29):
                    continue  # numerically broken clip output (csrc/rasterize/setup.h, kMaxFixed)
                piece = ref.setup_piece(fx[idx].astype(np.int64), fy[idx].astype(np.int64), qv[idx], P[idx, 3],
                                        beta[idx], cull_backfaces)
                if piece is None:
                    continue
                x0, x1 = ref.pixel_range(min(piece.X), max(piece.X), W)
                y0, y1 = ref.pixel_range(min(piece.Y), max(piece.Y), H)
                if x0 > x1 or y0 > y1:
                    continue
                rows["X"].append(piece.X)
                rows["Y"].append(piece.Y)
                rows["q"].append(qv[idx])
                rows["coef"].append(piece.bary_coef)
                rows["face"].append(f)
                rows["batch"].append(b)
    n = len(rows["face"])
    return tables_from_vertices(torch.tensor(np.array(rows["X"], np.int64).reshape(n, 3)),
                                torch.tensor(np.array(rows["Y"], np.int64).reshape(n, 3)),
                                torch.tensor(np.array(rows["q"], np.float32).reshape(n, 3)),
                                torch.tensor(np.array(rows["coef"], np.float64).reshape(n, 3, 3)),
                                torch.tensor(rows["face"], dtype=torch.int64),
                                torch.tensor(rows["batch"], dtype=torch.int64), H, W)


# ---- 2. binning -------------------------------------------------------------------------------------

def bin_pieces(pieces: PieceTables, B: int, H: int, W: int) -> TileBins:
    """Screen-tile binning of the pieces' pixel boxes (torch ops; stays on the input device)."""
    TX, TY = -(-W // TILE), -(-H // TILE)
    dev = pieces.box.device
    P = pieces.count
    if P == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=dev)
        return TileBins(empty, empty, B * TX * TY, TX, TY)
    x0, y0, nx, ny, b = pieces.box[:P].unbind(1)
    tx0, ty0 = torch.div(x0, TILE, rounding_mode="floor"), torch.div(y0, TILE, rounding_mode="floor")
    ntx = torch.div(x0 + nx - 1, TILE, rounding_mode="floor") - tx0 + 1
    nty = torch.div(y0 + ny - 1, TILE, rounding_mode="floor") - ty0 + 1
    per = ntx * nty
    piece = torch.repeat_interleave(torch.arange(P, device=dev), per)
    first = torch.cumsum(per, 0) - per
    k = torch.arange(piece.shape[0], device=dev) - first[piece]
    tx = tx0[piece] + k % ntx[piece]
    ty = ty0[piece] + torch.div(k, ntx[piece], rounding_mode="floor")
    tile = (b[piece] * TY + ty) * TX + tx
    # by tile; stable, so pieces stay in (face, fan) order within a tile (the kernel does not need
    # it: its depth test breaks ties by id explicitly)
    tile, order = torch.sort(tile, stable=True)
    return TileBins(tile, piece[order], B * TX * TY, TX, TY)


# ---- 3. packing -------------------------------------------------------------------------------------

def canonical_tables(itab: torch.Tensor, ftab: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rotate each piece's vertex labels (i -> i + r, which keeps the orientation) so that edge 0
    is the lexicographically smallest (A, B, C). Coincident pieces -- the same triangle listed
    twice, in any vertex order -- then have identical rows up to the coefficient columns, so every
    float32 operation of the kernel gives them bit-identical depths and the lowest id wins the
    tie, as in the exact backends. Same layouts out as in; a pure gather."""
    if itab.shape[0] == 0:
        return itab, ftab
    A, Bc, C = itab[:, 0:3], itab[:, 3:6], itab[:, 6:9]

    def less(i, j):
        return (A[:, i] < A[:, j]) | ((A[:, i] == A[:, j]) & ((Bc[:, i] < Bc[:, j]) | ((Bc[:, i] == Bc[:, j])
                                                                                      & (C[:, i] < C[:, j]))))
    is_min = torch.stack([less(i, (i + 1) % 3) & less(i, (i + 2) % 3) for i in range(3)], 1)
    r = torch.argmax(is_min.to(torch.int32), dim=1)  # all-equal rows (dummies): 0
    idx = (torch.arange(3, device=itab.device)[None, :] + r[:, None]) % 3  # new label j <- old (j + r) % 3
    cols = torch.cat([idx + 3 * g for g in range(4)], 1)  # A, B, C, bias groups
    itab_c = torch.gather(itab, 1, cols)
    fcols = torch.cat([idx, (3 + 3 * idx[:, :, None] + torch.arange(3, device=itab.device)).reshape(-1, 9),
                       torch.arange(12, 16, device=itab.device).expand(itab.shape[0], 4)], 1)
    ftab_c = torch.gather(ftab, 1, fcols)
    return itab_c.contiguous(), ftab_c.contiguous()


def pack_tiles(bins: TileBins) -> Tuple[torch.Tensor, torch.Tensor]:
    """TileBins -> (tiles int32 [num_tiles, 8], lists int32 [L']) with every tile's list starting
    on a multiple of 8 entries (32 bytes) and padded with -1."""
    dev = bins.tile.device
    NT, TX, TY = bins.num_tiles, bins.tiles_x, bins.tiles_y
    if bins.tile.numel():
        counts = torch.bincount(bins.tile, minlength=NT)
    else:
        counts = torch.zeros(NT, dtype=torch.int64, device=dev)
    padded = (counts + LIST_ALIGN - 1) // LIST_ALIGN * LIST_ALIGN
    starts = torch.cumsum(padded, 0) - padded
    total = int(padded.sum()) if NT else 0
    lists = torch.full((max(total, LIST_ALIGN),), -1, dtype=torch.int32, device=dev)
    if bins.tile.numel():
        first_of_tile = torch.cumsum(counts, 0) - counts
        rank = torch.arange(bins.tile.shape[0], device=dev) - first_of_tile[bins.tile]
        lists[starts[bins.tile] + rank] = bins.piece.to(torch.int32)
    t = torch.arange(NT, device=dev)
    tiles = torch.zeros((NT, TILE_DESC_WORDS), dtype=torch.int32, device=dev)
    tiles[:, 0] = ((t % TX) * TILE).to(torch.int32)
    tiles[:, 1] = ((torch.div(t, TX, rounding_mode="floor") % TY) * TILE).to(torch.int32)
    tiles[:, 2] = starts.to(torch.int32)
    tiles[:, 3] = counts.to(torch.int32)
    return tiles, lists


def records(pieces: PieceTables, canonical: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """The kernel's piece records (rec_i int64 [P, 12], rec_f float32 [P, 16]): the tables as they
    are, optionally in canonical vertex order (:func:`canonical_tables`)."""
    itab, ftab = pieces.itab[:pieces.count], pieces.ftab[:pieces.count]
    if canonical:
        itab, ftab = canonical_tables(itab, ftab)
    if pieces.count == 0:  # the kernel's buffers are never empty: one record that covers nothing
        itab = torch.zeros((1, REC_I_WORDS), dtype=torch.int64, device=itab.device)
        itab[0, 6:9] = -1
        ftab = torch.zeros((1, REC_F_WORDS), dtype=torch.float32, device=ftab.device)
    return itab.contiguous(), ftab.contiguous()


def coords_table(device="cpu") -> torch.Tensor:
    """float32 [512]: the tile's local pixel coordinates lx (256 values) then ly."""
    p = torch.arange(TILE_PIXELS, device=device)
    return torch.cat([(p % TILE).float(), torch.div(p, TILE, rounding_mode="floor").float()])


# ---- 5. unpacking -----------------------------------------------------------------------------------

def unpack_output(out: torch.Tensor, B: int, H: int, W: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Kernel output float32 [B * TY * TX, 1280] -> (rast [B, H, W, 4], depth [B, H, W])."""
    TX, TY = -(-W // TILE), -(-H // TILE)
    img = out.view(B, TY, TX, PLANES, TILE, TILE).permute(0, 1, 4, 2, 5, 3).reshape(B, TY * TILE, TX * TILE, PLANES)
    img = img[:, :H, :W]
    return img[..., :4].contiguous(), img[..., 4].contiguous()


# ---- 4. fine raster, host-emulated kernel ----------------------------------------------------------

def fine_raster_host(coords, tiles, lists, rec_i, rec_f, block_dim: int = 8, num_threads: Optional[int] = None,
                     device_rounding: bool = False):
    """Run the kernel on the host (CPU tensors in the kernel's format) -> (out [NT, 1280], stats).
    ``device_rounding``: emulate the device's documented rounding bounds (fused Axpy, Div one ulp
    off) instead of IEEE host arithmetic."""
    from .. import _ext

    ext = _ext.get()
    if ext is None or not hasattr(ext, "ascendc_host_fine_raster"):
        raise RuntimeError("the compiled module render_npu._C with ascendc_host_fine_raster is not available: "
                           + (_ext.reason() or "this build predates the AscendC host emulation"))
    if num_threads is None:
        num_threads = max(1, torch.get_num_threads())
    out = torch.empty((tiles.shape[0], OUT_PER_TILE), dtype=torch.float32)
    stats = ext.ascendc_host_fine_raster(coords.numpy(), tiles.numpy(), lists.numpy(), rec_i.numpy(), rec_f.numpy(),
                                         out.numpy(), int(block_dim), int(num_threads), bool(device_rounding))
    return out, stats


def _setup(inp, setup: str) -> PieceTables:
    if setup in ("auto", "torch"):
        try:
            return pieces_from_torch(inp)
        except (ImportError, AttributeError):
            if setup == "torch":
                raise
    if setup in ("auto", "reference"):
        return pieces_from_reference(inp.pos, inp.faces, inp.height, inp.width, inp.viewport, inp.cull_backfaces)
    raise ValueError(f"setup must be 'auto', 'torch' or 'reference', got {setup!r}")


def prepare(inp, setup: str = "auto", canonical: bool = True):
    """Steps 1-3: RasterInputs -> dict of the kernel's input tensors (on the input device)."""
    pieces = _setup(inp, setup)
    B = inp.pos.shape[0]
    bins = bin_pieces(pieces, B, inp.height, inp.width)
    rec_i, rec_f = records(pieces, canonical)
    tiles, lists = pack_tiles(bins)
    return {"coords": coords_table(inp.pos.device), "tiles": tiles, "lists": lists, "rec_i": rec_i, "rec_f": rec_f}


def rasterize_host(inp, setup: str = "auto", block_dim: int = 8, num_threads: Optional[int] = None,
                   device_rounding: bool = False, canonical: bool = True, return_stats: bool = False, **_options):
    """The whole pipeline on CPU tensors with the host-emulated AscendC kernel -> (rast, depth)
    (and the emulator's instruction statistics with ``return_stats``)."""
    if inp.pos.device.type != "cpu":
        raise ValueError(f"rasterize_host needs CPU tensors, got {inp.pos.device}")
    k = prepare(inp, setup, canonical)
    out, stats = fine_raster_host(k["coords"], k["tiles"], k["lists"], k["rec_i"], k["rec_f"], block_dim, num_threads,
                                  device_rounding)
    rast, depth = unpack_output(out, inp.pos.shape[0], inp.height, inp.width)
    # parent-triangle post-pass in float32 torch ops, as rasterize_with_op does on the device
    rast, depth = resolve.resolve_(rast, depth, inp.pos, inp.faces, inp.viewport)
    return (rast, depth, stats) if return_stats else (rast, depth)


# ---- device path ------------------------------------------------------------------------------------

_status: Optional[Tuple[bool, str]] = None


def _load_op_library() -> str:
    """Load the torch_npu custom-op library if it is not registered yet; '' or why not."""
    if hasattr(torch.ops, OP_NAMESPACE) and hasattr(getattr(torch.ops, OP_NAMESPACE), "fine_raster"):
        return ""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get(OP_LIBRARY_ENV, "")] + sorted(glob.glob(os.path.join(here, "librender_npu_ascendc_ops*.so")))
    for path in candidates:
        if path and os.path.isfile(path):
            try:
                torch.ops.load_library(path)
                return ""
            except Exception as exc:  # noqa: BLE001
                return f"loading the AscendC op library {path} failed: {exc}"
    return (f"the AscendC op library (librender_npu_ascendc_ops.so) is not installed; build it with the CANN "
            f"toolkit (ascendc_kernels/README.md) and put it in render_npu/ or set {OP_LIBRARY_ENV}")


def _torch_setup_available() -> bool:
    try:
        from .torch import setup  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def status() -> Tuple[bool, str]:
    """(available, reason): available only with torch_npu, an NPU, and the registered custom op."""
    global _status
    if _status is not None:
        return _status
    try:
        import torch_npu  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken install
        _status = (False, f"torch_npu is not importable ({type(exc).__name__}: {exc}); the AscendC kernel runs on "
                          "Ascend NPUs only (its host-emulated build is render_npu.backends.ascendc.rasterize_host)")
        return _status
    why = _load_op_library()
    if why:
        _status = (False, why)
    elif not (hasattr(torch, "npu") and torch.npu.is_available()):
        _status = (False, "torch_npu imported but no NPU is available")
    elif not _torch_setup_available():
        _status = (False, "render_npu.backends.torch (which does the setup for the AscendC kernel) is unavailable")
    else:
        _status = (True, "AscendC fine-raster kernel (torch_npu custom op) after torch-op setup and binning")
    return _status


def host_status() -> Tuple[bool, str]:
    """(available, reason) of :func:`rasterize_host` (the host-emulated kernel; CPU tensors)."""
    from .. import _ext

    ext = _ext.get()
    if ext is None:
        return False, _ext.reason()
    if not hasattr(ext, "ascendc_host_fine_raster"):
        return False, "render_npu._C was built without the AscendC host emulation"
    return True, "AscendC fine-raster kernel compiled for the host against an emulated AscendC API (slow; for tests)"


def rasterize(inp, block_dim: Optional[int] = None, setup: str = "torch", **_options):
    """Backend entry point on NPU tensors: the torch backend's setup, binning and packing in torch
    ops on the NPU, then the AscendC kernel through ``torch.ops.render_npu_ascendc.fine_raster``."""
    ok, why = status()
    if not ok:
        raise RuntimeError(f"the AscendC backend is not available: {why}")
    if inp.pos.device.type != "npu":
        raise ValueError(f"the AscendC backend needs tensors on an NPU, got {inp.pos.device}")
    return rasterize_with_op(inp, getattr(torch.ops, OP_NAMESPACE).fine_raster, block_dim, setup)


def rasterize_with_op(inp, op, block_dim: Optional[int] = None, setup: str = "torch"):
    """Steps 1-5 with ``op`` (an op of schema :data:`OP_SCHEMA`) as the fine raster; the device
    path passes the torch_npu op, tests pass a CPU stand-in that runs the host-emulated kernel."""
    k = prepare(inp, setup)
    out = op(k["coords"], k["tiles"], k["lists"], k["rec_i"], k["rec_f"], int(block_dim or 0))
    rast, depth = unpack_output(out, inp.pos.shape[0], inp.height, inp.width)
    # The kernel's barycentrics/depth come from the snapped pieces; the contract's come from the
    # parent triangle (docs/rasterization.md section 3): a torch-ops post-pass on the device.
    return resolve.resolve_(rast, depth, inp.pos, inp.faces, inp.viewport)
