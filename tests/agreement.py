"""The "Agreement between backends" rule of the contract (../shared/SPEC.md), as a test helper.

    assert_agree(ref, out, pos, faces, H, W, viewport, exact=False, tag="scene-torch")
    report = agreement_report(ref, out, pos, faces, H, W, viewport)

``ref`` and ``out`` are ``(rast, depth)`` pairs (what ``render_npu.rasterize`` returns; torch
tensors or numpy arrays): ``rast`` float32 ``[B, H, W, 4]`` = ``(b0, b1, b2, id + 1)``, ``depth``
float32 ``[B, H, W]``; ``[H, W, 4]`` / ``[H, W]`` are read as ``B = 1``. ``pos`` is the clip-space
input ``[V, 4]`` or ``[B, V, 4]``, ``faces`` int ``[F, 3]``.

The rule, per pixel:

* triangle ids must be equal, except (unless ``exact=True``) where
  - the pixel centre lies within ``EDGE_TOL = 1e-3`` pixel of an edge of either candidate
    triangle (the two ids that disagree; id 0 = empty is no candidate), or
  - both candidates contain the pixel centre and their depths there differ by less than
    ``DEPTH_TIE = 1e-6``;
* where the ids agree and are non-zero, barycentrics and depth agree within ``VALUE_TOL = 1e-5``
  absolute; where both are empty, ``out`` holds exact zeros (rast and depth).

Candidate geometry is recomputed in float64 from the scene, through the reference's own clipper
(``reference.clip_triangle``, float32, as the contract defines it) and screen mapping
(``contract.screen_transform``), so triangles crossing the near plane or with ``w <= 0``
vertices are measured on their clipped polygon in screen space. "An edge" is a side of that
polygon, measured as a segment (not an infinite line), in pixel units with pixel ``(px, py)``'s
centre at ``(px + 0.5, py + 0.5)``. The contract lets a backend snap to any grid of at least
1/256 pixel, so the distance is the smaller of the distance to the unsnapped polygon and to the
polygon snapped to 1/256 pixel as the reference snaps it. Depth is ``z/w`` interpolated linearly
in screen space over the unsnapped polygon.

On failure a diff image is written to ``tests/_artifacts/agree_<tag>.png`` (batch images stacked
top to bottom, each flipped so NDC +y is up): grey = covered in ``ref`` and agreeing, black =
empty in both, red = id mismatch not excused, yellow = id mismatch excused, blue = ids agree but
barycentrics/depth off by more than ``VALUE_TOL`` (or non-zero values on an empty pixel).
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from render_npu import contract
from render_npu.backends import reference

EDGE_TOL = 1e-3  # pixels
DEPTH_TIE = 1e-6  # NDC depth units
VALUE_TOL = 1e-5  # barycentrics and depth, absolute
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_artifacts")


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _pair(result) -> Tuple[np.ndarray, np.ndarray]:
    rast, depth = result
    rast, depth = _np(rast), _np(depth)
    if rast.ndim == 3:
        rast = rast[None]
    if depth.ndim == 2:
        depth = depth[None]
    return rast, depth


class _Candidate:
    """Screen-space geometry of one triangle of one batch entry (float64, pixel units)."""

    def __init__(self, v: np.ndarray, H: int, W: int, viewport: str):
        self.polys: List[np.ndarray] = []  # [n, 2] polygons: unsnapped, snapped to 1/256 px
        self.plane: Optional[np.ndarray] = None  # depth = a sx + b sy + c
        v = np.asarray(v, np.float32)
        if not np.all(np.isfinite(v)):
            return
        poly = reference.clip_triangle(v)
        if len(poly) < 3:
            return
        P = np.stack([p.pos for p in poly])  # float32 [n, 4]
        ax, bx = contract.screen_transform(W, viewport)
        ay, by = contract.screen_transform(H, viewport)
        P64 = P.astype(np.float64)
        with np.errstate(all="ignore"):
            X, Y, Q = P64[:, 0] / P64[:, 3], P64[:, 1] / P64[:, 3], P64[:, 2] / P64[:, 3]
            exact = np.stack([X * float(ax) + float(bx), Y * float(ay) + float(by)], axis=1)
            # the contract's snap, in its float32 arithmetic
            fx, fy = contract.snap(P[:, 0] / P[:, 3], ax, bx), contract.snap(P[:, 1] / P[:, 3], ay, by)
        snapped = np.stack([fx, fy], axis=1).astype(np.float64) / contract.SUBPIXEL
        for p in (exact, snapped):
            if np.all(np.isfinite(p)):
                self.polys.append(p)
        if not self.polys or not np.all(np.isfinite(Q)) or not np.all(np.isfinite(exact)):
            return
        # Depth plane from the parent's homogeneous vertices in float64: z = a x + b y + c w holds on
        # the triangle's plane, so z/w = a X + b Y + c in NDC. This avoids the float32 rounding of
        # clipped vertices (up to ~3e-5 in depth for near-plane cuts).
        V64 = v.astype(np.float64)
        M3 = V64[:, [0, 1, 3]]
        if abs(np.linalg.det(M3)) > 1e-12 * max(1.0, float(np.abs(M3).max()) ** 3):
            a, b, c = np.linalg.solve(M3, V64[:, 2])
            fax, fay = float(ax), float(ay)
            if fax != 0.0 and fay != 0.0:
                self.plane = np.array([a / fax, b / fay, c - a * float(bx) / fax - b * float(by) / fay])
                return
        # fallback: the fan triangle of largest area (all fan triangles share the plane)
        best, best_area = None, 0.0
        for i in range(1, len(exact) - 1):
            e1, e2 = exact[i] - exact[0], exact[i + 1] - exact[0]
            area = abs(e1[0] * e2[1] - e1[1] * e2[0])
            if area > best_area:
                best, best_area = (0, i, i + 1), area
        if best is not None and best_area > 1e-12:
            M = np.column_stack([exact[list(best)], np.ones(3)])
            self.plane = np.linalg.solve(M, Q[list(best)])

    def edge_distance(self, c: np.ndarray) -> np.ndarray:
        """Distance [N] from points ``c`` [N, 2] to the nearest polygon side (inf if no polygon)."""
        d = np.full(len(c), np.inf)
        for poly in self.polys:
            n = len(poly)
            for i in range(n):
                p, q = poly[i], poly[(i + 1) % n]
                e = q - p
                ee = float(e @ e)
                t = np.zeros(len(c)) if ee == 0 else np.clip(((c - p) @ e) / ee, 0.0, 1.0)
                d = np.minimum(d, np.linalg.norm(c - (p + t[:, None] * e), axis=1))
        return d

    def contains(self, c: np.ndarray) -> np.ndarray:
        """Whether points ``c`` [N, 2] are strictly inside either polygon (convex; any winding)."""
        inside = np.zeros(len(c), bool)
        for poly in self.polys:
            n = len(poly)
            cross = np.stack([(poly[(i + 1) % n][0] - poly[i][0]) * (c[:, 1] - poly[i][1])
                              - (poly[(i + 1) % n][1] - poly[i][1]) * (c[:, 0] - poly[i][0]) for i in range(n)])
            inside |= np.all(cross > 0, axis=0) | np.all(cross < 0, axis=0)
        return inside

    def depth(self, c: np.ndarray) -> np.ndarray:
        if self.plane is None:
            return np.full(len(c), np.nan)
        return c @ self.plane[:2] + self.plane[2]


def agreement_report(ref, out, pos, faces, H: int, W: int, viewport: str, exact: bool = False,
                     max_listed: int = 10, edge_tol: float = EDGE_TOL, depth_tie: float = DEPTH_TIE,
                     depth_slack_px: float = 0.0, ids_only: bool = False) -> Dict:
    """Compare ``out`` with ``ref`` under the agreement rule; never raises on disagreement.

    ``edge_tol`` (pixels) and ``depth_tie`` default to the contract's values. ``depth_slack_px`` widens
    the depth tie for a rasterizer that places vertices differently by up to that many pixels (another
    snapping grid or rounding): two candidates tie when their depths differ by less than
    ``depth_tie + depth_slack_px * (|grad q_a| + |grad q_b|)`` (gradients in NDC depth per pixel);
    0 for the contract's rule. ``ids_only=True`` skips the barycentric/depth comparison (for an
    ``out`` that carries ids only, e.g. from OpenGL).

    Returns a dict: ``pixels``, ``covered_ref``, ``covered_out``, ``id_mismatch`` (all pixels whose
    ids differ), ``excused_edge``, ``excused_depth_tie``, ``unexcused`` (id mismatches the rule does
    not allow; with ``exact=True`` every id mismatch), ``value_bad`` (pixels with agreeing ids but
    barycentrics/depth off by more than ``VALUE_TOL``, or non-zero output on an empty pixel),
    ``max_bary_err``, ``max_depth_err`` (over agreeing covered pixels), ``first_unexcused`` and
    ``first_value_bad`` (lists of dicts with batch, row, col, ids, distances/values), ``ok``, and
    the masks ``masks`` (bool [B, H, W] each: ``unexcused``, ``excused``, ``value_bad``).
    """
    rr, rd = _pair(ref)
    orr, od = _pair(out)
    if rr.shape != orr.shape or rd.shape != od.shape:
        raise AssertionError(f"shape mismatch: ref rast {rr.shape} depth {rd.shape}, out rast {orr.shape} "
                             f"depth {od.shape}")
    B = rr.shape[0]
    if rr.shape[1:] != (H, W, 4):
        raise AssertionError(f"rast has shape {rr.shape}, expected [B, {H}, {W}, 4]")
    pos = _np(pos).astype(np.float32)
    if pos.ndim == 2:
        pos = pos[None]
    faces = _np(faces).astype(np.int64).reshape(-1, 3)
    if pos.shape[0] == 1 and B > 1:
        pos = np.broadcast_to(pos, (B,) + pos.shape[1:])
    F = faces.shape[0]
    rid, oid = rr[..., 3], orr[..., 3]
    for name, ids in (("ref", rid), ("out", oid)):
        bad = ~np.isfinite(ids) | (ids != np.round(ids)) | (ids < 0) | (ids > F)
        if bad.any():
            raise AssertionError(f"{name} holds {int(bad.sum())} invalid triangle ids (not integers in [0, {F}])")
    rid, oid = rid.astype(np.int64), oid.astype(np.int64)

    mism = rid != oid
    excused_edge = np.zeros_like(mism)
    excused_tie = np.zeros_like(mism)
    details: Dict[Tuple[int, int, int], dict] = {}
    if mism.any() and not exact:
        cache: Dict[Tuple[int, int], _Candidate] = {}

        def cand(b, t):
            key = (b, t)
            if key not in cache:
                cache[key] = _Candidate(pos[b, faces[t]], H, W, viewport)
            return cache[key]

        bb, yy, xx = np.nonzero(mism)
        centres = np.stack([xx + 0.5, yy + 0.5], axis=1).astype(np.float64)
        dist = np.full(len(bb), np.inf)
        dep = np.full((2, len(bb)), np.nan)
        grad = np.zeros((2, len(bb)))
        inside = np.zeros((2, len(bb)), bool)
        for side, ids in enumerate((rid[bb, yy, xx], oid[bb, yy, xx])):
            for key in set(zip(bb.tolist(), ids.tolist())):
                b, t = key
                if t == 0:
                    continue
                sel = (bb == b) & (ids == t)
                c = cand(b, t - 1)
                dist[sel] = np.minimum(dist[sel], c.edge_distance(centres[sel]))
                dep[side, sel] = c.depth(centres[sel])
                grad[side, sel] = np.inf if c.plane is None else np.hypot(c.plane[0], c.plane[1])
                inside[side, sel] = c.contains(centres[sel])
        edge_ok = dist <= edge_tol
        with np.errstate(invalid="ignore"):
            slack = depth_slack_px * (grad[0] + grad[1]) if depth_slack_px else 0.0
            tie_ok = inside[0] & inside[1] & (np.abs(dep[0] - dep[1]) < depth_tie + slack)
        excused_edge[bb, yy, xx] = edge_ok
        excused_tie[bb, yy, xx] = tie_ok & ~edge_ok
        for i in range(len(bb)):
            details[(int(bb[i]), int(yy[i]), int(xx[i]))] = {
                "edge_dist": float(dist[i]), "depth_ref_tri": float(dep[0, i]), "depth_out_tri": float(dep[1, i])}
    unexcused = mism & ~excused_edge & ~excused_tie

    both = ~mism & (rid > 0)
    empty = ~mism & (rid == 0)
    bary_err = np.abs(rr[..., :3].astype(np.float64) - orr[..., :3].astype(np.float64)).max(axis=-1)
    depth_err = np.abs(rd.astype(np.float64) - od.astype(np.float64))
    with np.errstate(invalid="ignore"):
        value_bad = both & ~((bary_err <= VALUE_TOL) & (depth_err <= VALUE_TOL))
    value_bad |= empty & (np.any(orr[..., :3] != 0, axis=-1) | (od != 0))
    if ids_only:
        value_bad[:] = False

    def listing(mask, with_values):
        rows = []
        for b, y, x in zip(*np.nonzero(mask)):
            b, y, x = int(b), int(y), int(x)
            row = {"batch": b, "row": y, "col": x, "ref_id": int(rid[b, y, x]) - 1, "out_id": int(oid[b, y, x]) - 1}
            row.update(details.get((b, y, x), {}))
            if with_values:
                row.update(ref_bary=rr[b, y, x, :3].tolist(), out_bary=orr[b, y, x, :3].tolist(),
                           ref_depth=float(rd[b, y, x]), out_depth=float(od[b, y, x]))
            rows.append(row)
            if len(rows) >= max_listed:
                break
        return rows

    return {
        "pixels": int(rid.size),
        "covered_ref": int((rid > 0).sum()),
        "covered_out": int((oid > 0).sum()),
        "id_mismatch": int(mism.sum()),
        "excused_edge": int(excused_edge.sum()),
        "excused_depth_tie": int(excused_tie.sum()),
        "unexcused": int(unexcused.sum()),
        "value_bad": int(value_bad.sum()),
        "max_bary_err": float(np.nanmax(bary_err[both], initial=0.0)) if both.any() else 0.0,
        "max_depth_err": float(np.nanmax(depth_err[both], initial=0.0)) if both.any() else 0.0,
        "max_mismatch_edge_dist": max((d["edge_dist"] for d in details.values() if d["edge_dist"] <= edge_tol),
                                      default=0.0),
        "first_unexcused": listing(unexcused, False),
        "first_value_bad": listing(value_bad, True),
        "ok": not unexcused.any() and not value_bad.any(),
        "masks": {"unexcused": unexcused, "excused": mism & ~unexcused, "value_bad": value_bad,
                  "covered_ref": rid > 0},
    }


def write_diff_png(report: Dict, path: str) -> str:
    """Write the diff image of a report (colours in the module docstring); returns the path."""
    from PIL import Image

    m = report["masks"]
    B, H, W = m["unexcused"].shape
    img = np.zeros((B, H, W, 3), np.uint8)
    img[m["covered_ref"]] = (110, 110, 110)
    img[m["value_bad"]] = (40, 80, 255)
    img[m["excused"]] = (255, 220, 0)
    img[m["unexcused"]] = (255, 0, 0)
    img = img[:, ::-1].reshape(B * H, W, 3)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.ascontiguousarray(img)).save(path)
    return path


def assert_agree(ref, out, pos, faces, H: int, W: int, viewport: str, exact: bool = False,
                 tag: Optional[str] = None) -> Dict:
    """Raise AssertionError (and write a diff PNG) unless ``out`` agrees with ``ref``; returns the report.

    ``exact=True`` (reference vs compiled CPU backend): ids must be equal on every pixel.
    """
    rep = agreement_report(ref, out, pos, faces, H, W, viewport, exact=exact)
    if rep["ok"]:
        return rep
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", tag or "unnamed")
    png = write_diff_png(rep, os.path.join(ARTIFACTS, f"agree_{name}.png"))
    lines = [f"backends disagree{' (' + tag + ')' if tag else ''} ({'exact' if exact else 'agreement rule'}): "
             f"{rep['unexcused']} unexcused id mismatches of {rep['id_mismatch']} "
             f"({rep['excused_edge']} within {EDGE_TOL} px of an edge, {rep['excused_depth_tie']} depth ties), "
             f"{rep['value_bad']} pixels with barycentrics/depth off by > {VALUE_TOL} "
             f"(max bary err {rep['max_bary_err']:.3g}, max depth err {rep['max_depth_err']:.3g}); "
             f"covered ref {rep['covered_ref']}, out {rep['covered_out']} of {rep['pixels']}; diff image {png}"]
    for row in rep["first_unexcused"]:
        lines.append(f"  id mismatch {row}")
    for row in rep["first_value_bad"]:
        lines.append(f"  value mismatch {row}")
    raise AssertionError("\n".join(lines))


def exact_resolve(pos, faces, rast, H: int, W: int, viewport: str):
    """Exact perspective-correct barycentrics and depth at the covered pixel centres of ``rast``
    (its ids), solved in float64 from the unsnapped parent triangles by a 3x3 linear solve
    (independent of the backends' formula): ``sum_k c_k (x_k, y_k, w_k) = (X, Y, 1)`` at the
    centre's NDC ``(X, Y)``, ``b = c / sum(c)``, depth ``= sum_k c_k z_k``.

    Returns ``(bb, yy, xx, bary [N, 3], depth [N])``; rows whose system is singular are NaN."""
    rr = _np(rast)
    if rr.ndim == 3:
        rr = rr[None]
    pos = _np(pos).astype(np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    faces = _np(faces).astype(np.int64)
    ids = rr[..., 3].astype(np.int64)
    bb, yy, xx = np.nonzero(ids > 0)
    ax, bx = (float(t) for t in contract.screen_transform(W, viewport))
    ay, by = (float(t) for t in contract.screen_transform(H, viewport))
    v = pos[bb[:, None], faces[ids[bb, yy, xx] - 1]]  # [N, 3, 4]
    M = np.transpose(v[..., [0, 1, 3]], (0, 2, 1))  # columns: vertices
    rhs = np.stack([(xx + 0.5 - bx) / ax, (yy + 0.5 - by) / ay, np.ones(len(xx))], axis=1)
    with np.errstate(all="ignore"):
        ok = np.abs(np.linalg.det(M)) > 0
        c = np.full((len(xx), 3), np.nan)
        if ok.any():
            c[ok] = np.linalg.solve(M[ok], rhs[ok][..., None])[..., 0]
        bary = c / c.sum(axis=1, keepdims=True)
        depth = (c * v[..., 2]).sum(axis=1)
    return bb, yy, xx, bary, depth


def precision_errors(out, pos, faces, H: int, W: int, viewport: str):
    """|bary - exact| (max over the 3) and |depth - exact| [N] at the covered pixels of ``out``
    (rast, depth) whose centre is inside the exact triangle (every exact b_k >= 0)."""
    rr, dd = _pair(out)
    bb, yy, xx, bary, depth = exact_resolve(pos, faces, rr, H, W, viewport)
    inside = np.all(bary >= 0, axis=1) & np.isfinite(depth)
    eb = np.abs(rr[bb, yy, xx, :3].astype(np.float64) - bary).max(axis=1)
    ed = np.abs(dd[bb, yy, xx].astype(np.float64) - depth)
    return eb[inside], ed[inside]


# Backends that need hardware this machine may not have (the AscendC op needs an Ascend NPU).
HARDWARE_BACKENDS = ("ascendc",)


def backend_params(names=None):
    """pytest params over ``render_npu.backends()`` (optionally only ``names``).

    A backend that needs hardware absent here (``HARDWARE_BACKENDS``) is not collected; the pytest
    header lists it with the reason. Any other unavailable backend is a missing part of this project: its params skip with the reason, or fail under
    ``RENDER_NPU_TEST_STRICT`` (conftest.py)."""
    import pytest

    import render_npu

    out = []
    for name, (ok, why) in render_npu.backends().items():
        if (names is not None and name not in names) or (not ok and name in HARDWARE_BACKENDS):
            continue
        marks = () if ok else (pytest.mark.unavailable_backend(f"backend {name!r} unavailable: {why}"),)
        out.append(pytest.param(name, id=name, marks=marks))
    return out
