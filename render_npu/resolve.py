"""Barycentrics and depth from the parent triangle (docs/rasterization.md section 3), in torch ops,
and the autograd link that makes ``rasterize``'s barycentrics and depth differentiable in
``pos_clip``.

Coverage, ids and the depth test use the snapped 1/256-pixel grid; the *output* barycentrics and
depth are solved at the pixel centre from the parent triangle's own clip coordinates. With
``hx_k = ax x_k + bx w_k`` and ``hy_k = ay y_k + by w_k`` (homogeneous pixel coordinates) and the
centre ``(P, Q) = (px + 1/2, py + 1/2)``:

    r_k = hx_k - P w_k,  s_k = hy_k - Q w_k,  u = r x s,  b = u / sum(u)
    depth = sum_k u_k z_k / sum_k u_k w_k

(``b`` is the point of the parent's plane seen through the centre; it needs no clipped vertex and
holds for ``w <= 0`` vertices). Negative ``b_k`` (the snapped piece covers a centre the exact
triangle does not) are clamped to 0 and the rest renormalised; a degenerate parent gives 1/3 each
and keeps the depth-test depth.

The reference (numpy) and the compiled CPU backend evaluate this in float64. Here it runs in the
dtype of ``pos`` (float32 on devices), arranged to stay accurate in float32: per pixel,
``r_k = ax x_k + (bx - P) w_k`` is formed with error-free products and an error-free sum (Dekker,
Knuth), so the cancellation between the two terms (large when the triangle is far from the image
origin and small on screen) costs no digits. The torch and AscendC backends call :func:`resolve_`
after their depth test.

Gradients (:func:`attach`): ``d(b, depth) / d(x, y, z, w)`` of the three parent vertices at every
covered pixel, summed into ``grad_pos``. Ids and coverage carry none (silhouette gradients are
antialiasing's). On CPU tensors the backward is the compiled ``rasterize_backward``
(csrc/rasterize/resolve.h), elsewhere :func:`backward_torch`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch

from .contract import screen_transform

_CHUNK = 1 << 16  # pixels per chunk by default: ~400 bytes of temporaries each


def _screen(H: int, W: int, viewport: str) -> Tuple[float, float, float, float]:
    ax, bx = screen_transform(W, viewport)
    ay, by = screen_transform(H, viewport)
    return float(ax), float(bx), float(ay), float(by)


def _split(a):
    """Veltkamp split of float32 ``a`` into two halves of at most 12 significant bits each."""
    c = a * 4097.0
    hi = c - (c - a)
    return hi, a - hi


def _const_split(a: float) -> Tuple[float, float]:
    """Veltkamp split of a float32 constant, in float32 arithmetic (numpy)."""
    x = np.float32(a)
    c = x * np.float32(4097.0)
    hi = c - (c - x)
    return float(hi), float(x - hi)


def _solve32(v: torch.Tensor, px: torch.Tensor, py: torch.Tensor, screen):
    """float32 :func:`_solve_cm`: one contiguous [n] vector per vertex component, every operand
    split once (Veltkamp) and reused: r_k, s_k as double-float sums of error-free products,
    u = r x s with error-free leading products and first-order low terms."""
    ax, bx, ay, by = screen
    cP = bx - (px.to(torch.float32) + 0.5)  # exact: small (half-)integers
    cQ = by - (py.to(torch.float32) + 0.5)
    (axh, axl), (ayh, ayl) = _const_split(ax), _const_split(ay)
    cPh, cPl = _split(cP)
    cQh, cQl = _split(cQ)

    def hom(t, ah, al, a, c, ch, cl, w, wh, wl):  # a t + c w = hi + lo
        th, tl = _split(t)
        p1 = t * a
        e1 = ((th * ah - p1) + th * al + tl * ah) + tl * al
        p2 = c * w
        e2 = ((ch * wh - p2) + ch * wl + cl * wh) + cl * wl
        s_ = p1 + p2
        bb = s_ - p1
        e = ((p1 - (s_ - bb)) + (p2 - bb)) + (e1 + e2)
        hi = s_ + e
        return hi, e - (hi - s_)

    r, rl, s, sl = [], [], [], []
    for k in range(3):
        w = v[3, k]
        wh, wl = _split(w)
        hi, lo = hom(v[0, k], axh, axl, ax, cP, cPh, cPl, w, wh, wl)
        r.append(hi), rl.append(lo)
        hi, lo = hom(v[1, k], ayh, ayl, ay, cQ, cQh, cQl, w, wh, wl)
        s.append(hi), sl.append(lo)
    rs, ss = [_split(t) for t in r], [_split(t) for t in s]
    u = []
    for k in range(3):
        n, q = (k + 1) % 3, (k + 2) % 3  # u_k = r_n s_q - r_q s_n
        p1 = r[n] * s[q]
        e1 = ((rs[n][0] * ss[q][0] - p1) + rs[n][0] * ss[q][1] + rs[n][1] * ss[q][0]) + rs[n][1] * ss[q][1]
        p2 = r[q] * s[n]
        e2 = ((rs[q][0] * ss[n][0] - p2) + rs[q][0] * ss[n][1] + rs[q][1] * ss[n][0]) + rs[q][1] * ss[n][1]
        d = p1 - p2
        bb = d - p1
        ed = (p1 - (d - bb)) + (-p2 - bb)
        first = (r[n] * sl[q] + rl[n] * s[q]) - (r[q] * sl[n] + rl[q] * s[n])
        u.append(d + ((ed + (e1 - e2)) + first))
    z, w = v[2], v[3]
    S = (u[0] + u[1]) + u[2]
    num = (u[0] * z[0] + u[1] * z[1]) + u[2] * z[2]
    den = (u[0] * w[0] + u[1] * w[1]) + u[2] * w[2]
    return torch.stack(r), torch.stack(s), torch.stack(u), z, w, S, num, den


def _solve_cm(v: torch.Tensor, px: torch.Tensor, py: torch.Tensor, screen):
    """Per pixel, component-major: v [4, 3, n] (component x, y, z, w; parent vertex k; pixel),
    px/py [n] pixel indices -> r, s, u, z, w [3, n], S, num, den [n] of the module docstring.
    Every per-pixel quantity is a contiguous row (long rows vectorize; reductions over a short
    trailing dim are slow on CPU)."""
    v = v.contiguous()
    if v.dtype == torch.float32:
        return _solve32(v, px, py, screen)
    ax, bx, ay, by = screen
    x, y, z, w = v.unbind(0)
    # r_k = ax x_k + (bx - P) w_k: both products exact in float64 (float32 operands, short
    # constants), one rounding in the sum
    r = torch.addcmul(x * ax, w, (bx - 0.5) - px.to(v.dtype))
    s = torch.addcmul(y * ay, w, (by - 0.5) - py.to(v.dtype))
    # u_k = r_{k+1} s_{k+2} - r_{k+2} s_{k+1}, row by row (linalg.cross over a dim of 3 is ~3x slower
    # on CPU; rows (0, 1, 2, 0, 1) concatenated first wrote twice the bytes)
    u = torch.stack([r[(k + 1) % 3] * s[(k + 2) % 3] - r[(k + 2) % 3] * s[(k + 1) % 3] for k in range(3)])
    return r, s, u, z, w, u.sum(0), (u * z).sum(0), (u * w).sum(0)


def _solve(v: torch.Tensor, px: torch.Tensor, py: torch.Tensor, screen):
    """:func:`_solve_cm` for v [n, 3, 4] (the backward's layout): r, s, u, z, w [n, 3] (views),
    S, num, den [n]."""
    r, s, u, z, w, S, num, den = _solve_cm(v.permute(2, 1, 0), px, py, screen)
    return r.t(), s.t(), u.t(), z.t(), w.t(), S, num, den


def _bary(u: torch.Tensor, S: torch.Tensor, dim: int = 1) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(b, active, Sa): clamped, renormalised barycentrics u_k / Sa over the unclamped components
    (``active``: u_k / S not negative, NaN included), Sa their sum of u. ``u`` holds the three
    components along ``dim`` ([n, 3] with dim 1, [3, n] with dim 0); S [n]. Divisions as
    multiplications by reciprocals (same signs, also for S = +-0; a rounding more: irrelevant)."""
    neg = u * torch.reciprocal(S).unsqueeze(dim) < 0
    ua = torch.where(neg, torch.zeros((), dtype=u.dtype, device=u.device), u)
    Sa = ua.sum(dim)
    return ua * torch.reciprocal(Sa).unsqueeze(dim), ~neg, Sa


def resolve_cm(v: torch.Tensor, px: torch.Tensor, py: torch.Tensor, screen, fallback_depth: Optional[torch.Tensor],
               expo: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Barycentrics [3, n] and depth [n] (dtype of ``v``) of n covered pixels from their parents'
    vertices ``v`` [4, 3, n] (component, vertex, pixel); ``screen`` = (ax, bx, ay, by);
    ``fallback_depth`` [n]: the depth-test depth, which replaces a non-finite depth (None: the
    depth is returned as solved, non-finite values included, for the caller to replace). ``expo`` (int32 [3, n], optional): ``v`` holds
    each vertex scaled by ``2**-expo`` (:func:`_normalise`); the barycentrics are weighted back, the
    depth is invariant."""
    r, s, u, z, w, S, num, den = _solve_cm(v, px, py, screen)
    if expo is not None:  # b_k ~ u'_k 2**-expo_k: weights 2**(min expo - expo_k) <= 1, exact
        t = ((expo.amin(0) - expo).clamp_min(-126) + 127) * (1 << 23)  # float32 bits
        u = u * t.view(torch.float32)
        S = (u[0] + u[1]) + u[2]
    b, _, Sa = _bary(u, S, 0)
    # u is finite (float64 products of float32 values; float32: normalised rows) and the active u_k
    # share Sa's sign, so |b_k| <= 1 unless Sa is 0 or NaN: one test per pixel, not per component
    b = torch.where(Sa.abs() > 0, b, torch.full((), 1.0 / 3.0, dtype=b.dtype, device=b.device))
    d = num / den
    if fallback_depth is not None:
        d = torch.where(torch.isfinite(d), d, fallback_depth.to(d.dtype))
    return b, d


def _normalise(pos_flat: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """float32 [N, 4] -> (each row scaled by a power of two to a largest |component| in [1, 2),
    int32 [N] exponents e with row = scaled * 2**e). Exact; keeps float32 products of clip
    coordinates from 1e-30 to 1e38 in range. (Barycentrics are invariant to a common scale only, so
    :func:`resolve_cm` weights them back.)"""
    m = pos_flat.abs().amax(1)
    # the exponent field of |m| (sign bit clear): floor(log2 m); 0 or denormal -> -126
    e = torch.div(m.view(torch.int32), 1 << 23, rounding_mode="floor").clamp(1, 254) - 127
    scale = ((127 - e) * (1 << 23)).clamp(1 << 23, 254 << 23).view(torch.float32)  # 2**-e
    return pos_flat * scale.unsqueeze(1), e


def component_major(x: torch.Tensor, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``x`` [n, k] -> contiguous [k, n] in ``dtype`` (default: x's), written by one converting,
    transposing copy (on CPU ~7x faster than ``x.t().to(dtype).contiguous()``, which converts in
    the transposed layout and then copies again: 0.18 against 1.2 ms for a [200k, 3] int32 face
    table)."""
    out = torch.empty((x.shape[1], x.shape[0]), dtype=x.dtype if dtype is None else dtype, device=x.device)
    return out.copy_(x.t())


class Parents(NamedTuple):
    """What the resolve reads of the parent triangles, made once per call (:func:`parents`)."""
    pos_t: torch.Tensor  # [4, B * V] clip coordinates, component-major, in the solve's dtype
    expo: Optional[torch.Tensor]  # int32 [B * V]: float32 solve, columns of pos_t scaled by 2**-expo
    faces_t: torch.Tensor  # int64 [3, F]
    V: int
    screen: Tuple[float, float, float, float]


def parents(pos: torch.Tensor, faces: torch.Tensor, H: int, W: int, viewport: str,
            dtype: torch.dtype = torch.float32) -> Parents:
    """The per-call tables of :func:`resolve_chunk`: pos float [B, V, 4], faces int [F, 3];
    ``dtype``: the solve's arithmetic (float32 with double-float steps, or float64)."""
    B, V = pos.shape[0], pos.shape[1]
    pos_flat = pos.detach().reshape(B * V, 4)
    expo = None
    if dtype == torch.float32:
        pos_flat, expo = _normalise(pos_flat.to(torch.float32))
    return Parents(component_major(pos_flat, dtype), expo, component_major(faces, torch.int64), V,
                   _screen(H, W, viewport))


def resolve_chunk(par: Parents, b: Optional[torch.Tensor], fid: torch.Tensor, px: torch.Tensor, py: torch.Tensor,
                  fallback_depth: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Barycentrics [3, n] and depth [n] (the solve's dtype) of n covered pixels: batch entry
    ``b`` (int64 [n], or None for batch 1), parent face ``fid`` (int64 [n]), pixel column/row
    ``px``/``py`` (int64 [n]), depth-test depth ``fallback_depth`` [n] (or None:
    :func:`resolve_cm`). The vertices are gathered
    straight into the component-major layout of :func:`resolve_cm` (``gather`` with an expanded
    index from component-major tables: on CPU ~10x faster than row gathers plus a transposing
    copy, measured 3 vs 35 ms per 2**17 pixels)."""
    n = fid.shape[0]
    vid = torch.gather(par.faces_t, 1, fid.expand(3, n))  # [3, n]
    if b is not None:
        vid = vid + b * par.V
    flat = vid.view(1, 3 * n)
    v = torch.gather(par.pos_t, 1, flat.expand(4, 3 * n)).view(4, 3, n)
    expo = None if par.expo is None else par.expo.index_select(0, flat[0]).view(3, n)
    return resolve_cm(v, px, py, par.screen, fallback_depth, expo)


def _gather(pos_flat: torch.Tensor, faces: torch.Tensor, V: int, b: torch.Tensor, fid: torch.Tensor):
    """Parent vertices [n, 3, 4] and their rows in ``pos_flat`` [B * V, 4] ([n, 3] int64)."""
    vid = b.unsqueeze(1) * V + faces.index_select(0, fid).long()
    return pos_flat.index_select(0, vid.reshape(-1)).view(-1, 3, 4), vid


def unflatten_pixels(q: torch.Tensor, H: int, W: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat indices ``q`` (int64 [n]) into a [B, H, W] image -> (batch, row, col), each int64 [n]."""
    b = torch.div(q, H * W, rounding_mode="floor")
    rem = q - b * (H * W)
    py = torch.div(rem, W, rounding_mode="floor")
    return b, py, rem - py * W


def _pixels(ids: torch.Tensor, q: Optional[torch.Tensor] = None):
    """Covered pixels of ids [B, H, W] (id + 1, float): flat index (``q`` if given: those
    pixels), batch, row, col, face id."""
    B, H, W = ids.shape
    if q is None:
        q = torch.nonzero(ids.reshape(-1) > 0).squeeze(1)
    b, py, px = unflatten_pixels(q, H, W)
    fid = ids.reshape(-1).index_select(0, q).long() - 1
    return q, b, py, px, fid


def resolve_(rast: torch.Tensor, depth: torch.Tensor, pos: torch.Tensor, faces: torch.Tensor, viewport: str,
             hit: Optional[torch.Tensor] = None, chunk: int = _CHUNK,
             dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """Overwrite the barycentrics and depth of the covered pixels of (rast [B, H, W, 4], depth
    [B, H, W], float32, contiguous) with the parent-triangle resolve, on rast's device; ``depth``
    holds the depth-test depth on entry (the fallback). ``hit``: the covered pixels' flat indices
    if the caller has them (saves a host sync; repeats are harmless); ``chunk``: pixels per step
    (~400 bytes each); ``dtype``: arithmetic, float32 (double-float steps; every device has it)
    or float64. Returns (rast, depth)."""
    B, H, W, _ = rast.shape
    par = parents(pos, faces, H, W, viewport, dtype)
    q, b, py, px, fid = _pixels(rast[..., 3], hit)
    rflat, dflat = rast.view(-1, 4), depth.view(-1)
    for s0 in range(0, q.shape[0], chunk):
        sl = slice(s0, s0 + chunk)
        bary, d = resolve_chunk(par, b[sl] if B > 1 else None, fid[sl], px[sl], py[sl], dflat.index_select(0, q[sl]))
        rflat[q[sl], :3] = bary.t().to(torch.float32)
        dflat.index_copy_(0, q[sl], d.to(torch.float32))
    return rast, depth


def backward_torch(pos: torch.Tensor, faces: torch.Tensor, ids: torch.Tensor, viewport: str,
                   grad_bary: Optional[torch.Tensor], grad_depth: Optional[torch.Tensor]) -> torch.Tensor:
    """d(loss)/d(pos) [B, V, 4] (dtype of ``pos``) from the gradients of the outputs at the covered
    pixels of ``ids`` [B, H, W] (id + 1): ``grad_bary`` [B, H, W, 3] and ``grad_depth`` [B, H, W]
    (either may be None)."""
    B, H, W = ids.shape
    V = pos.shape[1]
    screen = _screen(H, W, viewport)
    ax, bx, ay, by = screen
    pos_flat = pos.detach().reshape(B * V, 4)
    dt = pos.dtype
    grad = torch.zeros((B * V, 4), dtype=dt, device=pos.device)
    q, b, py, px, fid = _pixels(ids)
    for s0 in range(0, q.shape[0], _CHUNK):
        sl = slice(s0, s0 + _CHUNK)
        v, vid = _gather(pos_flat, faces, V, b[sl], fid[sl])
        r, s, u, z, w, S, num, den = _solve(v, px[sl], py[sl], screen)
        gu = torch.zeros_like(u)
        gz = torch.zeros_like(u)
        gw = torch.zeros_like(u)
        if grad_bary is not None:
            gb = grad_bary.reshape(-1, 3).index_select(0, q[sl]).to(dt)
            bary, active, Sa = _bary(u, S)
            ok = torch.isfinite(bary).all(1, keepdim=True)
            dot = (gb * bary).sum(1, keepdim=True)
            g = torch.where(active & ok, (gb - dot) / Sa.unsqueeze(1), torch.zeros((), dtype=dt, device=u.device))
            gu = gu + torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        if grad_depth is not None:
            gd = grad_depth.reshape(-1).index_select(0, q[sl]).to(dt)
            d = num / den
            c = torch.where(torch.isfinite(d), gd / den, torch.zeros((), dtype=dt, device=u.device)).unsqueeze(1)
            d = torch.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0).unsqueeze(1)
            gu = gu + c * (z - d * w)
            gz = c * u
            gw = -c * d * u
        # u = r x s: dL/dr = s x gu, dL/ds = gu x r
        gr = torch.linalg.cross(s, gu, dim=1)
        gs = torch.linalg.cross(gu, r, dim=1)
        P = (px[sl].to(dt) + 0.5).unsqueeze(1)
        Q = (py[sl].to(dt) + 0.5).unsqueeze(1)
        g = torch.stack((ax * gr, ay * gs, gz, gw + (bx - P) * gr + (by - Q) * gs), 2)  # [n, 3, 4]
        grad.index_add_(0, vid.reshape(-1), g.reshape(-1, 4))
    return grad.view(B, V, 4)


def _numpy(t: Optional[torch.Tensor], dtype) -> Optional[np.ndarray]:
    """A CPU tensor as a C-contiguous numpy array of ``dtype`` (no copy when it already is one);
    None stays None."""
    if t is None:
        return None
    t = t.detach()
    if t.dtype == torch.bfloat16:  # (numpy has no bfloat16)
        t = t.float()
    return np.ascontiguousarray(t.numpy(), dtype=dtype)


def _backward(pos, faces, rast, viewport, grad_bary, grad_depth, impl: str = "auto"):
    """d(loss)/d(pos) from rast [B, H, W, 4] (ids in channel 3) and the output gradients
    (grad_bary [B, H, W, 3 or 4], channels 0..2 used; grad_depth [B, H, W]; either None): the
    compiled backward on CPU tensors (float64 arithmetic, multithreaded, deterministic;
    ``impl="cpu"`` requires it), torch ops elsewhere (or with ``impl="torch"``)."""
    if impl not in ("auto", "cpu", "torch"):
        raise ValueError(f"backward must be 'auto', 'cpu' or 'torch', got {impl!r}")
    if impl == "cpu" and pos.device.type != "cpu":
        raise ValueError(f"backward='cpu' needs CPU tensors, got {pos.device}")
    if pos.device.type == "cpu" and impl != "torch":
        from . import _ext

        ext = _ext.get()
        if ext is not None and hasattr(ext, "rasterize_backward"):
            f64 = any(g is not None and g.dtype == torch.float64 for g in (grad_bary, grad_depth))
            gdt = np.float64 if f64 else np.float32
            # Conversions in numpy, not torch: a parallel torch op leaves torch's OpenMP threads
            # spinning for milliseconds, beside the backward's own threads (2x its time on 2 cores).
            gp = np.zeros(pos.shape, np.float64)
            ext.rasterize_backward(_numpy(pos, np.float64), _numpy(faces, np.int32), _numpy(rast, np.float32),
                                   viewport == "opengl", _numpy(grad_bary, gdt), _numpy(grad_depth, gdt),
                                   torch.get_num_threads(), gp, f64)
            np_dtype = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}.get(pos.dtype)
            if np_dtype is None:
                return torch.from_numpy(gp).to(pos.dtype)
            return torch.from_numpy(gp.astype(np_dtype, copy=False))
        if impl == "cpu":
            raise RuntimeError(f"the compiled backward is not available: {_ext.reason()}")
    gb = None if grad_bary is None else grad_bary[..., :3]
    return backward_torch(pos, faces, rast[..., 3], viewport, gb, grad_depth)


class _Attach(torch.autograd.Function):
    """(rast, depth) computed without autograd -> the same values, linked to ``pos``."""

    @staticmethod
    def forward(ctx, pos, faces, viewport, rast, depth):
        ctx.save_for_backward(pos, faces, rast)
        ctx.viewport = viewport
        ctx.mark_non_differentiable(faces)
        ctx.set_materialize_grads(False)  # an unused output's gradient is None, not [B, H, W] zeros
        return rast.view_as(rast), depth.view_as(depth)

    @staticmethod
    def backward(ctx, grad_rast, grad_depth):
        pos, faces, rast = ctx.saved_tensors
        if not ctx.needs_input_grad[0] or (grad_rast is None and grad_depth is None):
            return None, None, None, None, None
        grad = _backward(pos, faces, rast, ctx.viewport, grad_rast, grad_depth)
        return grad, None, None, None, None


def attach(pos: torch.Tensor, faces: torch.Tensor, viewport: str, rast: torch.Tensor,
           depth: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(rast, depth)`` from a backend run on ``pos.detach()`` -> the same values, differentiable
    (barycentrics and depth) with respect to ``pos`` [B, V, 4] when it requires grad and grad mode
    is on; unchanged otherwise. ``rast[..., 3]`` (ids) gets no gradient."""
    if not (torch.is_grad_enabled() and pos.requires_grad):
        return rast, depth
    return _Attach.apply(pos, faces, viewport, rast, depth)


class _Resolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, faces, rast, viewport, impl):
        ctx.save_for_backward(pos, faces, rast)
        ctx.viewport, ctx.impl = viewport, impl
        ids = rast[..., 3]
        B, H, W = ids.shape
        bary = torch.zeros((B, H, W, 3), dtype=pos.dtype, device=pos.device)
        depth = torch.zeros((B, H, W), dtype=pos.dtype, device=pos.device)
        q, b, py, px, fid = _pixels(ids)
        par = parents(pos, faces, H, W, viewport, pos.dtype)
        bb, d = resolve_chunk(par, b, fid, px, py, torch.zeros_like(px, dtype=pos.dtype))
        bary.view(-1, 3)[q] = bb.t().to(pos.dtype)
        depth.view(-1)[q] = d
        return bary, depth

    @staticmethod
    def backward(ctx, grad_bary, grad_depth):
        pos, faces, rast = ctx.saved_tensors
        return _backward(pos, faces, rast, ctx.viewport, grad_bary, grad_depth, ctx.impl), None, None, None, None


def resolve(pos: torch.Tensor, faces: torch.Tensor, rast: torch.Tensor, viewport: str = "align_corners",
            backward: str = "auto") -> Tuple[torch.Tensor, torch.Tensor]:
    """Differentiable barycentrics [B, H, W, 3] and depth [B, H, W] (dtype of ``pos`` [B, V, 4];
    float64 gives the float64 solve) at the covered pixels of ``rast`` (its ids, from
    :func:`render_npu.rasterize` with the same faces, resolution and viewport); zeros elsewhere.
    The same function and backward as ``rasterize``'s outputs; for gradient checks. ``backward``:
    "auto" (compiled on CPU tensors, torch ops elsewhere), "cpu" or "torch"."""
    return _Resolve.apply(pos, faces, rast.detach(), viewport, backward)
