"""Texture sampling with nvdiffrast's filter and boundary modes, mipmaps and gradients, in torch ops.

Conventions (nvdiffrast's documentation): ``tex`` is ``[B, Ht, Wt, C]`` (``[B, 6, Ht, Wt, C]`` for a
cube map), batch 1 broadcasts; ``uv`` is ``[B, H, W, 2]`` with texel (i, j) (row i, column j) centred
at ``((j + 0.5) / Wt, (i + 0.5) / Ht)``: ``u`` runs along the width, ``v`` along the height, no flip.
``uv_da`` is ``[B, H, W, 4] = (du/dX, du/dY, dv/dX, dv/dY)`` per pixel (``[B, H, W, 6]`` of the
direction's ``(dx/dX, dx/dY, dy/dX, dy/dY, dz/dX, dz/dY)`` for cube maps).

Mipmaps: level k+1 halves level k (rounding down, at least 1) by a box filter (2 x 2 texels for even
sizes; area-weighted averaging for odd ones). The level of detail is OpenGL's isotropic one,
``lod = log2(max(|d(u Wt, v Ht)/dX|, |d(u Wt, v Ht)/dY|)) + mip_level_bias`` (``lod = bias`` without
``uv_da``), clamped to ``[0, levels - 1]``; ``linear-mipmap-linear`` blends the bilinear lookups of
levels ``floor(lod)`` and ``floor(lod) + 1``, ``linear-mipmap-nearest`` takes level
``floor(lod + 0.5)``.

Every output is differentiable by autograd with respect to ``tex`` (and a given ``mip`` stack), ``uv``,
``uv_da`` and ``mip_level_bias`` (zero where the level is clamped, as the lookup does not depend on it
there).

Cube maps (``boundary_mode='cube'``): the face is chosen by the direction's major axis and addressed
as in OpenGL (faces +x, -x, +y, -y, +z, -z; :data:`CUBE_FRAMES`); each face has its own mip chain.
Filtering is seamless, as OpenGL's seamless cube maps and nvdiffrast's documentation describe: a
bilinear tap that falls one texel outside the face reads the adjacent face's texel that lies there
(the one the extended face's texel centre folds onto across the cube edge), and at a cube corner,
where the fourth tap has no texel, its weight is shared equally by the three texels meeting at the
corner (the footprint's other three taps). ``nearest`` reads within the face.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .. import _ext
from ..backends.torch.driver import _cpu_threads

FILTER_MODES = ("auto", "nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear")
BOUNDARY_MODES = ("wrap", "clamp", "zero", "cube")


class TextureMip:
    """A mip stack from :func:`construct_mip`: ``levels[0]`` is the texture, each next one half the size."""

    def __init__(self, levels: List[torch.Tensor], cube_mode: bool):
        self.levels = levels
        self.cube_mode = cube_mode

    def __len__(self):
        return len(self.levels)


def _check_tex(tex: torch.Tensor, cube_mode: bool, name: str = "tex") -> None:
    if not isinstance(tex, torch.Tensor) or not tex.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                        f"{tex.dtype if isinstance(tex, torch.Tensor) else type(tex).__name__}")
    want = 5 if cube_mode else 4
    if tex.dim() != want or (cube_mode and tex.shape[1] != 6) or min(tex.shape) < 1:
        shape = "[B, 6, H, W, C]" if cube_mode else "[B, H, W, C]"
        raise ValueError(f"{name} must have shape {shape} with every size >= 1"
                         f"{' (boundary_mode=cube)' if cube_mode else ''}, got {list(tex.shape)}")
    if cube_mode and tex.shape[2] != tex.shape[3]:
        raise ValueError(f"{name}: cube map faces must be square, got {tex.shape[2]} x {tex.shape[3]}")


def _downsample(level: torch.Tensor) -> torch.Tensor:
    """One mip step: [..., h, w, C] -> [..., max(1, h // 2), max(1, w // 2), C], box filter."""
    lead, (h, w, c) = level.shape[:-3], level.shape[-3:]
    x = level.reshape(-1, h, w, c).permute(0, 3, 1, 2)
    oh, ow = max(1, h // 2), max(1, w // 2)
    if h % 2 == 0 and w % 2 == 0:
        y = F.avg_pool2d(x, 2)
    elif (h == 1 or h % 2 == 0) and (w == 1 or w % 2 == 0):
        y = F.avg_pool2d(x, (min(2, h), min(2, w)))
    else:
        y = F.adaptive_avg_pool2d(x, (oh, ow))
    return y.permute(0, 2, 3, 1).reshape(*lead, oh, ow, c)


def construct_mip(tex: torch.Tensor, max_mip_level: Optional[int] = None, cube_mode: bool = False) -> TextureMip:
    """Build the mip stack of ``tex`` down to 1 x 1, or to ``max_mip_level`` levels below the base.

    Differentiable: gradients reaching any level flow back to ``tex``.
    """
    _check_tex(tex, cube_mode)
    if max_mip_level is not None and (isinstance(max_mip_level, bool) or not isinstance(max_mip_level, int)
                                      or max_mip_level < 0):
        raise ValueError(f"max_mip_level must be None or an int >= 0, got {max_mip_level!r}")
    levels = [tex]
    while levels[-1].shape[-3] > 1 or levels[-1].shape[-2] > 1:
        if max_mip_level is not None and len(levels) > max_mip_level:
            break
        levels.append(_downsample(levels[-1]))
    return TextureMip(levels, cube_mode)


def _wrap_index(i: torch.Tensor, n, mode: str):
    """Texel index -> (in-range index, validity mask or None) for a boundary mode; ``n`` is an int or
    a per-pixel int64 tensor (the size of each pixel's mip level)."""
    if mode == "wrap":
        return torch.remainder(i, n), None
    hi = n - 1
    c = i.clamp(0, hi) if isinstance(n, int) else torch.minimum(i.clamp_min(0), hi)
    if mode == "zero":
        return c, (i >= 0) & (i < n)
    return c, None  # clamp (and cube maps' in-face nearest lookups)


def _pin(v: torch.Tensor) -> torch.Tensor:
    """Texel coordinates pinned to +-1e9 (NaN to -1e9) so the int64 cast is defined (as csrc/texture)."""
    return torch.nan_to_num(v, nan=-1e9).clamp(-1e9, 1e9)


class _Stack:
    """Mip levels flattened into one [Bt, sum(levels' texels), C] tensor, so that one gather per tap
    serves pixels that read different levels."""

    def __init__(self, levels: List[torch.Tensor]):
        self.levels = levels
        Bt, C = levels[0].shape[0], levels[0].shape[-1]
        self.flat = torch.cat([lv.reshape(Bt, -1, C) for lv in levels], 1) if len(levels) > 1 \
            else levels[0].reshape(Bt, -1, C)
        dev = levels[0].device
        self.h = torch.tensor([lv.shape[-3] for lv in levels], dtype=torch.int64, device=dev)
        self.w = torch.tensor([lv.shape[-2] for lv in levels], dtype=torch.int64, device=dev)
        sizes = [lv[0].numel() // C for lv in levels]
        self.off = torch.tensor([0] + sizes[:-1], dtype=torch.int64, device=dev).cumsum(0)


def _gather(flat: torch.Tensor, bidx: Optional[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    """flat [Bt, N, C]; idx int64 [B, H, W] -> [B, H, W, C] (Bt == 1 broadcasts). index_select, whose
    backward is an index_add (several times faster on CPU than advanced indexing's index_put)."""
    Bt, N, C = flat.shape
    if bidx is not None:
        idx = idx + bidx * N
    return flat.reshape(Bt * N, C).index_select(0, idx.reshape(-1)).view(*idx.shape, C)


def _sample(stack: _Stack, level, cube: bool, s: torch.Tensor, t: torch.Tensor, face: Optional[torch.Tensor],
            boundary: str, nearest: bool) -> torch.Tensor:
    """Bilinear (or nearest) lookup at texture coordinates s, t [B, H, W] in mip level ``level``
    (an int, or an int64 tensor [B, H, W] of per-pixel levels); cube maps: on face ``face``."""
    if isinstance(level, int):
        h, w = stack.levels[level].shape[-3], stack.levels[level].shape[-2]
        base = int(stack.off[level])
        wf, hf = w, h
    else:
        h, w = stack.h[level], stack.w[level]
        base = stack.off[level]
        wf, hf = w.to(s.dtype), h.to(s.dtype)
    flat = stack.flat
    B = s.shape[0]
    bidx = None if flat.shape[0] == 1 else torch.arange(B, device=s.device).view(B, 1, 1)
    mode = "clamp" if cube else boundary
    if nearest:  # cube maps: within the face
        xi, mx = _wrap_index(_pin(torch.floor(s * wf)).long(), w, mode)
        yi, my = _wrap_index(_pin(torch.floor(t * hf)).long(), h, mode)
        out = _gather(flat, bidx, base + (0 if face is None else face * (h * w)) + yi * w + xi)
        if mx is not None:
            out = out * (mx & my).unsqueeze(-1).to(out.dtype)
        return out
    x, y = _pin(s * wf - 0.5), _pin(t * hf - 0.5)
    x0f, y0f = torch.floor(x.detach()), torch.floor(y.detach())
    fx, fy = (x - x0f).unsqueeze(-1), (y - y0f).unsqueeze(-1)
    x0, y0 = x0f.long(), y0f.long()
    if cube:
        out = None
        for idx, wgt in _cube_taps(face, x0, y0, fx, fy, w):
            v = _gather(flat, bidx, base + idx) * wgt
            out = v if out is None else out + v
        return out
    xa, ma = _wrap_index(x0, w, mode)
    xb, mb = _wrap_index(x0 + 1, w, mode)
    ya, na = _wrap_index(y0, h, mode)
    yb, nb = _wrap_index(y0 + 1, h, mode)
    out = None
    for yi, my, wy in ((ya, na, 1 - fy), (yb, nb, fy)):
        for xi, mx, wx in ((xa, ma, 1 - fx), (xb, mb, fx)):
            wgt = wy * wx
            if mx is not None:
                wgt = wgt * (mx & my).unsqueeze(-1).to(wgt.dtype)
            v = _gather(flat, bidx, base + yi * w + xi) * wgt
            out = v if out is None else out + v
    return out


# Per face (+x, -x, +y, -y, +z, -z): the signed unit axes (n, S, T) of OpenGL's cube-map table: the
# face's outward normal, and the directions in which its s (columns) and t (rows) grow; a direction d
# on face f has sc = S.d, tc = T.d, ma = n.d = |major component|, s = (sc / ma + 1) / 2, t likewise.
CUBE_FRAMES = torch.tensor([[[1, 0, 0], [0, 0, -1], [0, -1, 0]],
                            [[-1, 0, 0], [0, 0, 1], [0, -1, 0]],
                            [[0, 1, 0], [1, 0, 0], [0, 0, 1]],
                            [[0, -1, 0], [1, 0, 0], [0, 0, -1]],
                            [[0, 0, 1], [1, 0, 0], [0, -1, 0]],
                            [[0, 0, -1], [-1, 0, 0], [0, -1, 0]]], dtype=torch.int64)


def _cube_fold(face: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor, n):
    """Texel (column xi, row yi) of ``face`` in a level of n x n texels per face (``n`` an int or
    int64 tensor), at most one texel outside the face along at most one axis -> (face, column, row)
    of the texel it denotes: itself inside the face, else the adjacent face's texel that the
    extended face folds onto across the cube edge.

    Exact integer arithmetic: a texel centre is the cube-surface point
    ``n * N + a * S + b * T`` (scaled by n) with ``a = 2 xi + 1 - n``, ``b = 2 yi + 1 - n``. One
    past the edge (``|a| = n + 1``) the overshoot ``|a| - n`` is folded from S onto -N, which lands
    on the neighbour face (the S axis becomes the major one) at the texel row next to the edge."""
    fr = CUBE_FRAMES.to(face.device)[face]  # [..., 3 (N, S, T), 3]
    nn, ss, tt = fr.unbind(-2)
    a, b = 2 * xi + 1 - n, 2 * yi + 1 - n
    oa, ob = (a.abs() - n).clamp_min(0), (b.abs() - n).clamp_min(0)
    a_in, b_in = a - oa * torch.sign(a), b - ob * torch.sign(b)
    P = (n - oa - ob).unsqueeze(-1) * nn + a_in.unsqueeze(-1) * ss + b_in.unsqueeze(-1) * tt
    axis = P.abs().argmax(-1, keepdim=True)
    major = P.gather(-1, axis).squeeze(-1)
    nf = 2 * axis.squeeze(-1) + (major < 0).long()
    fr2 = CUBE_FRAMES.to(face.device)[nf]
    a2, b2 = (P * fr2[..., 1, :]).sum(-1), (P * fr2[..., 2, :]).sum(-1)
    return nf, torch.div(a2 + n - 1, 2, rounding_mode="floor"), torch.div(b2 + n - 1, 2, rounding_mode="floor")


def _cube_taps(face: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor, n):
    """The four bilinear taps of a cube-map lookup with footprint corner (x0, y0) on ``face`` and
    fractions fx, fy [..., 1], as (flat texel index within the level, weight [..., 1]) pairs, seamless
    across cube edges (module docstring). A tap outside the face in both axes (a cube corner) gets
    weight 0, its bilinear weight going a third each to the other three taps, which are then the three
    texels that meet at that corner."""
    taps = [(x0, y0, (1 - fy) * (1 - fx)), (x0 + 1, y0, (1 - fy) * fx),
            (x0, y0 + 1, fy * (1 - fx)), (x0 + 1, y0 + 1, fy * fx)]
    corner = [((xi < 0) | (xi >= n)) & ((yi < 0) | (yi >= n)) for xi, yi, _ in taps]
    share = sum(torch.where(c.unsqueeze(-1), w, torch.zeros_like(w)) for c, (_, _, w) in zip(corner, taps)) / 3
    out = []
    for c, (xi, yi, w) in zip(corner, taps):
        # the corner tap reads an in-face texel, with weight 0
        xi = torch.where(c, _wrap_index(xi, n, "clamp")[0], xi)
        yi = torch.where(c, _wrap_index(yi, n, "clamp")[0], yi)
        f2, x2, y2 = _cube_fold(face, xi, yi, n)
        out.append((f2 * (n * n) + y2 * n + x2, torch.where(c.unsqueeze(-1), torch.zeros_like(w), w + share)))
    return out


def _cube_coords(d: torch.Tensor, d_da: Optional[torch.Tensor]):
    """Direction [B, H, W, 3] -> (face int64, s, t in [0, 1], and (ds/dX, ds/dY, dt/dX, dt/dY) or None).

    OpenGL's cube-map face selection: the major axis (ties go to x, then y; zero to the + face)."""
    x, y, z = d.unbind(-1)
    ax, ay, az = x.abs(), y.abs(), z.abs()
    is_x = (ax >= ay) & (ax >= az)
    is_y = ~is_x & (ay >= az)
    face = torch.where(is_x, torch.where(x >= 0, 0, 1), torch.where(is_y, torch.where(y >= 0, 2, 3),
                                                                    torch.where(z >= 0, 4, 5)))
    fr = CUBE_FRAMES.to(device=d.device, dtype=d.dtype)[face]  # [B, H, W, 3 (N, S, T), 3]
    nn, ss, tt = fr.unbind(-2)
    sc, tc, ma = (ss * d).sum(-1), (tt * d).sum(-1), (nn * d).sum(-1)  # ma = |major| >= 0
    one = torch.ones_like(ma)
    ma_safe = torch.where(ma > 0, ma, one)
    s, t = 0.5 * (sc / ma_safe + 1), 0.5 * (tc / ma_safe + 1)
    st_da = None
    if d_da is not None:
        dX, dY = d_da[..., 0::2], d_da[..., 1::2]  # [B, H, W, 3] d(x, y, z)/dX and /dY
        out = []
        for c, num in ((ss, sc), (tt, tc)):
            for dd in (dX, dY):
                out.append(0.5 * ((c * dd).sum(-1) * ma_safe - num * (nn * dd).sum(-1)) / (ma_safe * ma_safe))
        st_da = torch.stack(out, -1)  # (ds/dX, ds/dY, dt/dX, dt/dY)
    return face, s, t, st_da


def texture(tex: torch.Tensor, uv: torch.Tensor, uv_da: Optional[torch.Tensor] = None,
            mip_level_bias: Optional[torch.Tensor] = None, mip: Union[None, TextureMip, Sequence[torch.Tensor]] = None,
            filter_mode: str = "auto", boundary_mode: str = "wrap", max_mip_level: Optional[int] = None) -> torch.Tensor:
    """Sample ``tex`` at ``uv``; nvdiffrast's ``texture`` (see the module docstring for conventions).

    Returns ``[B, H, W, C]`` in the promoted dtype of ``tex`` and ``uv``.
    """
    if filter_mode not in FILTER_MODES:
        raise ValueError(f"filter_mode must be one of {FILTER_MODES}, got {filter_mode!r}")
    if boundary_mode not in BOUNDARY_MODES:
        raise ValueError(f"boundary_mode must be one of {BOUNDARY_MODES}, got {boundary_mode!r}")
    cube = boundary_mode == "cube"
    _check_tex(tex, cube)
    nc = 3 if cube else 2
    if not isinstance(uv, torch.Tensor) or not uv.is_floating_point():
        raise TypeError(f"uv must be a floating-point torch.Tensor, got "
                        f"{uv.dtype if isinstance(uv, torch.Tensor) else type(uv).__name__}")
    if uv.dim() != 4 or uv.shape[-1] != nc:
        raise ValueError(f"uv must have shape [B, H, W, {nc}]{' (boundary_mode=cube)' if cube else ''}, "
                         f"got {list(uv.shape)}")
    B, H, W = uv.shape[:3]
    if tex.shape[0] not in (1, B):
        raise ValueError(f"tex has batch {tex.shape[0]} but uv has batch {B} (tex batch must be 1 or {B})")
    if uv.device != tex.device:
        raise ValueError(f"tex and uv must be on one device, got {tex.device} and {uv.device}")
    nda = 6 if cube else 4
    if uv_da is not None and (not isinstance(uv_da, torch.Tensor) or tuple(uv_da.shape) != (B, H, W, nda)):
        raise ValueError(f"uv_da must have shape [{B}, {H}, {W}, {nda}], got "
                         f"{list(uv_da.shape) if isinstance(uv_da, torch.Tensor) else type(uv_da).__name__}")
    if mip_level_bias is not None and (not isinstance(mip_level_bias, torch.Tensor)
                                       or tuple(mip_level_bias.shape) != (B, H, W)):
        raise ValueError(f"mip_level_bias must have shape [{B}, {H}, {W}], got "
                         f"{list(mip_level_bias.shape) if isinstance(mip_level_bias, torch.Tensor) else type(mip_level_bias).__name__}")
    if filter_mode == "auto":
        filter_mode = "linear-mipmap-linear" if (uv_da is not None or mip_level_bias is not None) else "linear"
    mipmapped = filter_mode.startswith("linear-mipmap")
    if mipmapped and uv_da is None and mip_level_bias is None:
        raise ValueError(f"filter_mode={filter_mode!r} needs uv_da or mip_level_bias to choose the mip level")

    dtype = torch.promote_types(tex.dtype, uv.dtype)
    uv = uv.to(dtype)
    face = None
    st_da = uv_da
    if cube:
        face, s, t, st_da = _cube_coords(uv, uv_da.to(dtype) if (mipmapped and uv_da is not None) else None)
    else:
        s, t = uv[..., 0], uv[..., 1]
    tex = tex.to(dtype)
    if _use_compiled(tex, uv, uv_da, mip_level_bias, mip, cube):
        return _compiled(tex, uv, uv_da, mip_level_bias, mip, max_mip_level, filter_mode, boundary_mode)
    # torch ops: one intra-op thread on CPU (render_npu.backends.torch.driver._cpu_threads: per-op
    # OpenMP barriers stall under load); the compiled kernel above keeps its own threads
    with _cpu_threads(tex.device):
        return _sample_all(tex, mip, max_mip_level, cube, s, t, face, st_da, mip_level_bias, boundary_mode,
                           filter_mode, dtype)


def _sample_all(tex, mip, max_mip_level, cube, s, t, face, st_da, mip_level_bias, boundary_mode, filter_mode,
                dtype) -> torch.Tensor:
    """The torch-ops lookup of :func:`texture` from its validated, prepared arguments."""
    mipmapped = filter_mode.startswith("linear-mipmap")
    if not mipmapped:
        return _sample(_Stack([tex]), 0, cube, s, t, face, boundary_mode, filter_mode == "nearest")

    levels = _mip_levels(tex, mip, max_mip_level, cube)
    h0, w0 = tex.shape[-3], tex.shape[-2]
    if st_da is not None:
        st_da = st_da.to(dtype)
        gx = (st_da[..., 0] * w0) ** 2 + (st_da[..., 2] * h0) ** 2
        gy = (st_da[..., 1] * w0) ** 2 + (st_da[..., 3] * h0) ** 2
        # clamp_min keeps log2 finite (and its gradient zero) for zero derivatives: level 0
        lod = 0.5 * torch.log2(torch.maximum(gx, gy).clamp_min(1e-30))
        if mip_level_bias is not None:
            lod = lod + mip_level_bias.to(dtype)
    else:
        lod = mip_level_bias.to(dtype)
    top = len(levels) - 1
    lod = torch.nan_to_num(lod, nan=0.0).clamp(0, top)  # NaN derivatives read level 0
    stack = _Stack(levels)
    if filter_mode == "linear-mipmap-nearest":
        return _sample(stack, torch.floor(lod.detach() + 0.5).long(), cube, s, t, face, boundary_mode, False)
    l0 = torch.floor(lod.detach()).long().clamp_max(max(top - 1, 0))
    frac = (lod - l0.to(dtype)).unsqueeze(-1)
    a = _sample(stack, l0, cube, s, t, face, boundary_mode, False)
    if top == 0:
        return a
    b = _sample(stack, l0 + 1, cube, s, t, face, boundary_mode, False)
    return a + frac * (b - a)


_FILTER_CODE = {"nearest": 0, "linear": 1, "linear-mipmap-nearest": 2, "linear-mipmap-linear": 3}
_BOUNDARY_CODE = {"wrap": 0, "clamp": 1, "zero": 2}


def _use_compiled(tex, uv, uv_da, bias, mip, cube) -> bool:
    """The compiled CPU forward (csrc/texture) serves float32 CPU lookups that need no gradient."""
    if cube or tex.device.type != "cpu" or tex.dtype != torch.float32:
        return False
    parts = [tex, uv, uv_da, bias]
    if isinstance(mip, TextureMip):
        parts += mip.levels
    elif isinstance(mip, (list, tuple)):
        parts += list(mip)
    if torch.is_grad_enabled() and any(isinstance(p, torch.Tensor) and p.requires_grad for p in parts):
        return False
    if any(p is not None and (p.dtype != torch.float32 or p.device.type != "cpu") for p in parts[1:4]):
        return False
    return _ext.get() is not None


def _compiled(tex, uv, uv_da, bias, mip, max_mip_level, filter_mode, boundary_mode) -> torch.Tensor:
    mipmapped = filter_mode.startswith("linear-mipmap")
    levels = _mip_levels(tex, mip, max_mip_level, False) if mipmapped else [tex]
    levels = [lv.detach().contiguous().numpy() for lv in levels]
    B, H, W = uv.shape[:3]
    out = torch.empty((B, H, W, tex.shape[-1]), dtype=torch.float32)

    def arr(t):
        return None if t is None else t.detach().contiguous().numpy()

    _ext.get().texture_forward(levels, arr(uv), arr(uv_da) if mipmapped else None, arr(bias) if mipmapped else None,
                               _FILTER_CODE[filter_mode], _BOUNDARY_CODE[boundary_mode], torch.get_num_threads(),
                               out.numpy())
    return out


def _mip_levels(tex, mip, max_mip_level, cube) -> List[torch.Tensor]:
    if mip is None:
        return construct_mip(tex, max_mip_level, cube).levels
    if isinstance(mip, TextureMip):
        if mip.cube_mode != cube:
            raise ValueError("mip was built with a different cube_mode than boundary_mode implies")
        levels = [tex] + list(mip.levels[1:])
    elif isinstance(mip, (list, tuple)):
        levels = [tex] + [m.to(tex.dtype) for m in mip]  # a user stack starts at level 1
        for k, m in enumerate(levels[1:], 1):
            _check_tex(m, cube, f"mip[{k - 1}]")
    else:
        raise TypeError(f"mip must be None, the result of texture_construct_mip or a list of tensors, "
                        f"got {type(mip).__name__}")
    if max_mip_level is not None:
        levels = levels[:max_mip_level + 1]
    return levels
