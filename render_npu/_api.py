"""Public entry points: rasterize and interpolate (contract: docs/rasterization.md)."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from . import _ext, _validate, backends, resolve


class RasterOutput(NamedTuple):
    """``rast``: float32 [B, H, W, 4] = (b0, b1, b2, triangle_id + 1), zeros where empty.
    ``depth``: float32 [B, H, W], NDC depth z/w of the visible fragment, 0 where empty.
    Barycentrics and depth are solved at the pixel centre from the parent triangle's clip
    coordinates (docs/rasterization.md section 3); when ``pos_clip`` requires grad (and grad mode
    is on) they are differentiable with respect to it; ids are not."""
    rast: torch.Tensor
    depth: torch.Tensor


def rasterize(resolution: Union[int, Sequence[int]], faces: torch.Tensor, pos_clip: torch.Tensor, *,
              viewport: str = "align_corners", cull_backfaces: bool = False, backend: str = "auto",
              num_threads: Optional[int] = None, memory_budget: Optional[int] = None,
              out: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, out_zeroed: bool = False,
              backend_options: Optional[Dict[str, Any]] = None) -> RasterOutput:
    """Rasterize triangles given in clip space.

    Args:
        resolution: ``int`` or ``(H, W)``, each 1..16384 pixels.
        faces: int32/int64 ``[F, 3]`` vertex indices in ``[0, V)``; ``F`` may be 0, at most 2**24.
        pos_clip: float ``[V, 4]`` or ``[B, V, 4]`` clip-space ``(x, y, z, w)`` (any float dtype,
            computed in float32). Same device as ``faces``. May require grad: the barycentrics
            and depth are then differentiable with respect to it (ids/coverage carry no gradient).
        viewport: ``"align_corners"`` (NDC +-1 on the centres of the edge pixels; Hunyuan3D) or
            ``"opengl"`` (NDC +-1 on the image borders; nvdiffrast). Row index grows with NDC y.
        cull_backfaces: drop triangles with negative signed area in screen space (y up).
        backend: ``"auto"``, ``"reference"``, ``"cpu"``, ``"torch"``, ``"ascendc"`` or ``"ascendc_host"``; see
            :func:`render_npu.backends`.
        num_threads: CPU backend threads (default ``torch.get_num_threads()``); never changes results.
        memory_budget: torch backend's bound on extra working memory, bytes.
            (Both are checked whatever the backend, and passed to the backends that take them.)
        out: optional ``(rast, depth)`` to write into: contiguous float32 ``[B, H, W, 4]`` and
            ``[B, H, W]`` on the input device, sharing no memory with each other or with the inputs
            (ValueError otherwise). For render loops: a fresh 2048² frame is 80 MB of
            untouched pages whose first-touch faults can cost more than rasterizing it. The CPU
            backend writes into them directly; other backends copy their result in.
        out_zeroed: ``out``'s tensors hold zeros already (for example fresh, lazily zeroed pages):
            the CPU backend then writes only the covered pixels, so pages that only background
            falls on are never touched. The result is the same; zeros are not checked.
        backend_options: further options of the chosen backend, by name (each backend's
            ``Backend.options`` in :mod:`render_npu.backends`; ValueError for others). The torch
            backend: ``edge_arith`` ("auto", "int64", "float32"), ``static_shapes``, ``stamp_size``,
            ``compile`` (docs/torch_backend.md); ``ascendc``: ``block_dim``.

    Returns:
        :class:`RasterOutput` ``(rast, depth)`` on the input device (``out``'s tensors if given);
        ``[V, 4]`` input gives B = 1.
    """
    inp = _validate.rasterize_inputs(resolution, faces, pos_clip, viewport, cull_backfaces)
    pos_graph = inp.pos  # keeps pos_clip's autograd graph; backends see a detached copy
    if pos_graph.requires_grad:
        inp = dataclasses.replace(inp, pos=pos_graph.detach())
    common = {"num_threads": num_threads, "memory_budget": memory_budget}
    for opt, value in common.items():
        # checked whatever the backend (one that ignores an option must not hide a bad value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{opt} must be a positive int or None, got {value!r}")
    chosen = backends.choose(backend, inp.pos.device.type)
    options = {k: v for k, v in common.items() if v is not None and k in chosen.options}
    if backend_options:
        unknown = sorted(set(backend_options) - set(chosen.options) - set(common))
        if unknown:
            raise ValueError(f"backend_options: backend {chosen.name!r} takes {list(chosen.options)}, got {unknown}")
        options.update(backend_options)
    B = inp.pos.shape[0]
    if not isinstance(out_zeroed, bool):
        raise TypeError(f"out_zeroed must be a bool, got {type(out_zeroed).__name__}")
    if out_zeroed and out is None:
        raise ValueError("out_zeroed=True needs out")
    if out is not None:
        out = _validate.out_buffers(out, B, inp.height, inp.width, inp.pos.device,
                                    (("pos_clip", pos_clip), ("faces", faces)))
    if B == 0 or inp.faces.shape[0] == 0:
        if out is not None:
            if not out_zeroed:
                out[0].zero_(), out[1].zero_()
            return RasterOutput(*resolve.attach(pos_graph, inp.faces, inp.viewport, *out))
        dev = inp.pos.device
        return RasterOutput(*resolve.attach(
            pos_graph, inp.faces, inp.viewport, torch.zeros((B, inp.height, inp.width, 4), dtype=torch.float32, device=dev),
            torch.zeros((B, inp.height, inp.width), dtype=torch.float32, device=dev)))
    if out is not None and chosen.writes_out:
        options["out"] = out
        options["out_zeroed"] = out_zeroed
    rast, depth = backends.status(chosen.name).fn(inp, **options)
    if out is not None and rast is not out[0]:
        out[0].copy_(rast), out[1].copy_(depth)
        rast, depth = out
    return RasterOutput(*resolve.attach(pos_graph, inp.faces, inp.viewport, rast, depth))


def interpolate(attr: torch.Tensor, rast: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Interpolate vertex attributes with the barycentrics in ``rast``.

    Args:
        attr: float ``[V, C]`` or ``[B, V, C]`` per-vertex attributes.
        rast: float ``[B, H, W, 4]`` from :func:`rasterize`.
        faces: int ``[F, 3]``, the faces that were rasterized.

    Returns:
        ``[B, H, W, C]`` (attr's dtype) = ``sum_k b_k * attr[faces[id - 1, k]]``, zero where ``id == 0``;
        differentiable with respect to ``attr`` and ``rast[..., :3]`` (``rast[..., 3]`` gets a zero
        gradient). CPU float32/float64 tensors run the compiled kernel (``csrc/interpolate``,
        multithreaded, GIL released, backward compiled too); other devices and dtypes run torch
        ops. Both give the same bits in the forward pass.
    """
    _check_attr(attr)
    if not isinstance(rast, torch.Tensor) or rast.dim() != 4 or rast.shape[-1] != 4:
        raise ValueError(f"rast must be a tensor of shape [B, H, W, 4], got "
                         f"{_validate.shape_of(rast)}")
    if not rast.is_floating_point():
        raise TypeError(f"rast must be a floating-point tensor, got {rast.dtype}")
    return interpolate_pixels(attr, rast, rast[..., 3], faces, "rast[..., 3]")


def _check_attr(attr) -> None:
    if not isinstance(attr, torch.Tensor) or not attr.is_floating_point():
        raise TypeError(f"attr must be a floating-point torch.Tensor, got "
                        f"{attr.dtype if isinstance(attr, torch.Tensor) else type(attr).__name__}")
    if attr.dim() not in (2, 3):
        raise ValueError(f"attr must have shape [V, C] or [B, V, C], got {list(attr.shape)}")


def interpolate_pixels(attr: torch.Tensor, bary: torch.Tensor, ids: torch.Tensor, faces: torch.Tensor,
                       ids_name: str = "ids") -> torch.Tensor:
    """:func:`interpolate` with the barycentrics and ids as separate tensors (the fronts' layouts,
    read in place): ``bary`` float ``[B, H, W, K >= 3]`` (``bary[..., :3]`` are used; a rast works),
    ``ids`` ``[B, H, W]`` id + 1 (float or int). Differentiable w.r.t. ``attr`` and ``bary``."""
    _check_attr(attr)
    if bary.dim() != 4 or bary.shape[-1] < 3 or tuple(ids.shape) != tuple(bary.shape[:3]):
        raise ValueError(f"barycentrics [B, H, W, 3] and ids [B, H, W] must match, got {list(bary.shape)} "
                         f"and {list(ids.shape)}")
    tri = _validate.faces(faces, attr.shape[-2])
    if attr.device != bary.device or tri.device != bary.device or ids.device != bary.device:
        raise ValueError(f"attr, rast and faces must be on one device, got {attr.device}, {bary.device}, "
                         f"{tri.device}")
    _validate.not_meta(attr, "attr")
    _validate.not_meta(ids, "rast")
    B = bary.shape[0]
    if attr.dim() == 3 and attr.shape[0] not in (1, B):
        raise ValueError(f"attr has batch {attr.shape[0]} but rast has batch {B}")
    if (bary.device.type == "cpu" and attr.dtype in (torch.float32, torch.float64) and bary.is_floating_point()
            and ids.numel() > 0 and not torch.compiler.is_compiling() and _ext.get() is not None):
        return _interpolate_compiled(attr, bary, ids, tri, ids_name)
    return _interpolate_torch(attr, bary, ids, tri, ids_name)


def _bad_ids(ids: torch.Tensor, F: int, name: str) -> ValueError:
    idf = ids.detach().double()
    lo, hi = (float(v) for v in torch.aminmax(idf)) if idf.numel() else (0.0, 0.0)
    return ValueError(f"{name} must hold triangle ids + 1 (integers in [0, {F}] for the {F} faces given), "
                      f"found values in [{lo}, {hi}]" + (", not all integers" if lo >= 0 and hi <= F else ""))


def _interpolate_torch(attr, bary, ids, tri, name):
    ids = ids.detach()  # ids carry no gradient (and float() of a graph tensor warns)
    B = bary.shape[0]
    F = tri.shape[0]
    # the id check needs values on the host: skipped while torch.compile traces (one graph with
    # the static-shape rasterizer, docs/torch_backend.md); eager calls always check
    if ids.numel() and not torch.compiler.is_compiling():
        # one host sync for the whole check (on a device each one stalls the stream); on the values
        # as given, before any cast: NaN fails every comparison, and NaN/inf/huge ids would become
        # arbitrary int64s
        good = (ids >= 0) & (ids <= F)
        if ids.is_floating_point():
            good &= ids == ids.trunc()  # integers only (exact: float32 ids <= 2**24)
        if not bool(good.all()):
            raise _bad_ids(ids, F, name)
    C = attr.shape[-1]
    if F == 0 or attr.shape[-2] == 0:  # every id is 0: nothing to gather; stay attached to the graph
        return (attr.new_zeros((B,) + tuple(bary.shape[1:3]) + (C,)) + attr.reshape(-1)[:0].sum()
                + bary.reshape(-1)[:0].sum().to(attr.dtype))
    idl = ids.to(torch.int64)
    hit = idl > 0
    corner = tri.long()[(idl - 1).clamp_min(0)]  # [B, H, W, 3] vertex indices
    if attr.dim() == 2:
        vals = attr[corner]  # [B, H, W, 3, C]
    else:
        a = attr.expand(B, -1, -1) if attr.shape[0] == 1 else attr
        bidx = torch.arange(B, device=attr.device).view(B, 1, 1, 1)
        vals = a[bidx, corner]
    b = bary[..., :3].to(attr.dtype).unsqueeze(-1)
    out = (b * vals).sum(dim=-2)
    return torch.where(hit.unsqueeze(-1), out, torch.zeros((), dtype=out.dtype, device=out.device))


def _evenly_strided(t: torch.Tensor, pixel_dims: int) -> bool:
    """Whether the first ``pixel_dims`` dimensions step through memory with one stride (what the
    compiled kernel reads in place)."""
    stride = count = None
    for d in range(pixel_dims - 1, -1, -1):
        if t.shape[d] == 1:
            continue
        if stride is None:
            stride, count = t.stride(d), t.shape[d]
        elif t.stride(d) != stride * count:
            return False
        else:
            count *= t.shape[d]
    return stride is None or stride > 0


def _compiled_inputs(attr, bary, ids):
    """attr [Ba, V, C] contiguous, bary and ids as the compiled kernel reads them in place."""
    if bary.dtype != attr.dtype:
        bary = bary[..., :3].to(attr.dtype)
    if bary.stride(-1) != 1 or not _evenly_strided(bary, 3):
        bary = bary.contiguous()
    if ids.dtype not in (torch.float32, torch.float64, torch.int32):
        ids = ids.double()  # exact for every id a rast can hold; huge values stay out of range
    if not _evenly_strided(ids, 3):
        ids = ids.contiguous()
    return (attr if attr.dim() == 3 else attr.unsqueeze(0)).contiguous(), bary, ids


def _interpolate_compiled(attr, bary, ids, tri, name):
    return _CompiledInterpolate.apply(*_compiled_inputs(attr, bary, ids), tri, name)


def interpolate_with_db(attr: torch.Tensor, bary: torch.Tensor, ids: torch.Tensor, faces: torch.Tensor,
                        db: torch.Tensor, ids_name: str = "ids"):
    """:func:`interpolate_pixels` and the attribute derivatives ``(dA/dX, dA/dY)`` per channel
    (``[B, H, W, 2 C]``, interleaved) from ``db`` ``[B, H, W, 4]`` = ``(du/dX, du/dY, dv/dX, dv/dY)``,
    in one compiled pass (each pixel's triangle read once): the derivative of ``A = u A0 + v A1 +
    (1 - u - v) A2`` is the interpolate with weights ``(du, dv, -(du + dv))``. Returns None where that
    pass does not apply (not a CPU float tensor, no compiled module, or a gradient is needed: the
    caller then composes :func:`interpolate_pixels`, which is differentiable)."""
    _check_attr(attr)
    if not (bary.device.type == "cpu" and attr.dtype in (torch.float32, torch.float64) and ids.numel() > 0
            and bary.is_floating_point() and not torch.compiler.is_compiling() and _ext.get() is not None):
        return None
    if torch.is_grad_enabled() and (attr.requires_grad or bary.requires_grad or db.requires_grad):
        return None
    tri = _validate.faces(faces, attr.shape[-2])
    B, H, W = ids.shape
    if tuple(bary.shape[:3]) != (B, H, W) or tuple(db.shape) != (B, H, W, 4) or tri.device != bary.device \
            or attr.device != bary.device or (attr.dim() == 3 and attr.shape[0] not in (1, B)):
        return None  # the composed path raises the precise error
    db = db.to(attr.dtype)
    if db.stride(-1) != 1 or not _evenly_strided(db, 3):
        db = db.contiguous()
    return _compiled_forward(*_compiled_inputs(attr, bary, ids), tri, ids_name, db)


def _compiled_forward(attr3, bary, ids, tri, name, db=None):
    """The compiled forward on :func:`_compiled_inputs`: out [B, H, W, C], and with ``db`` also
    out_db [B, H, W, 2 C]; raises the ids error for a bad id."""
    B, H, W = ids.shape
    C = attr3.shape[-1]
    # numpy-backed outputs: huge pages make first touch ~2x cheaper (see backends/cpu.py)
    out = np.empty((B * H * W, C), dtype=_np(attr3).dtype)
    out_db = None if db is None else np.empty((B * H * W, 2 * C), dtype=out.dtype)
    bad = _ext.get().interpolate(_np(attr3), _np(bary), _np(ids), tri.numpy(), B, torch.get_num_threads(), out=out,
                                 db=None if db is None else _np(db), out_db=out_db)
    if bad >= 0:
        raise _bad_ids(ids, tri.shape[0], name)
    out = torch.from_numpy(out).view(B, H, W, C)
    return out if db is None else (out, torch.from_numpy(out_db).view(B, H, W, 2 * C))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


class _CompiledInterpolate(torch.autograd.Function):
    """attr3 [Ba, V, C], bary [B, H, W, K >= 3], ids [B, H, W] -> [B, H, W, C]; backward compiled."""

    @staticmethod
    def forward(ctx, attr3, bary, ids, tri, name):
        out = _compiled_forward(attr3, bary, ids, tri, name)
        ctx.save_for_backward(attr3, bary, ids, tri)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        attr3, bary, ids, tri = ctx.saved_tensors
        need_attr, need_bary = ctx.needs_input_grad[:2]
        B, H, W = ids.shape
        dtype = _np(attr3).dtype
        g = grad.to(attr3.dtype).contiguous().view(B * H * W, -1)
        ga = np.empty(tuple(attr3.shape), dtype) if need_attr else None
        gb = np.empty((B * H * W, 3), dtype) if need_bary else None
        _ext.get().interpolate(_np(attr3), _np(bary), _np(ids), tri.numpy(), B, torch.get_num_threads(),
                               grad_out=_np(g), grad_attr=ga, grad_bary=gb)
        grad_bary = None
        if need_bary:
            grad_bary = torch.from_numpy(gb).view(B, H, W, 3)
            if bary.shape[-1] != 3:
                grad_bary = torch.cat([grad_bary, grad_bary.new_zeros((B, H, W, bary.shape[-1] - 3))], dim=-1)
        return (torch.from_numpy(ga) if need_attr else None), grad_bary, None, None, None
