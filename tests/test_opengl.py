"""External comparison: triangle ids from OpenGL (Mesa llvmpipe through moderngl's EGL backend) against
render_npu's exact backends ("reference", and "cpu" when built), in ``viewport="opengl"``.

OpenGL draws each scene unindexed (3 vertices per face, in face order) into an R32I colour attachment
holding ``gl_PrimitiveID + 1`` with a depth test ``LESS`` on a 24-bit depth buffer cleared to 1 (so the
first-drawn = lowest id wins equal depths, as in the contract), no culling, no multisampling;
``glReadPixels`` row 0 is the bottom row (window y in [0, 1)), the same as render_npu's row 0 (NDC
y = -1) -- checked by ``test_row_order``.

What may differ, and the bound (docs/opengl_comparison.md has the measured numbers):
* rasterization rules on pixel centres exactly on an edge: llvmpipe includes left and *bottom*
  (smallest y) edges, the reference left and *top* (largest y) edges; they differ only on horizontal
  edges through pixel centres (the pixel-centre grid scenes are built to have many);
* vertex placement: both snap to 1/256 px but may round differently (nearest vs. truncation, float
  paths), so an edge may sit up to sqrt(2)/256 = 0.0055 px apart -> a mismatch must lie within
  ``EDGE_TOL_GL = 1/128`` px of an edge of either candidate triangle;
* depth: where two surfaces cross, the depth planes through differently snapped vertices (and a 24-bit
  depth buffer) decide near-ties differently -> also excused when the candidates' depths differ by less
  than 1e-6 + (1/256 px) x (sum of their depth gradients per pixel);
and over all scenes without edges through pixel centres by construction, fewer than 0.1% of the pixels
may differ at all.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import render_npu
import scenes
from agreement import ARTIFACTS, agreement_report, backend_params, write_diff_png

EDGE_TOL_GL = 1.0 / 128  # px
DEPTH_SLACK_PX = 1.0 / 256  # px
MAX_FRACTION = 1e-3
TIE_SCENES = ("grid_centres_opengl",)  # edges through pixel centres by construction (in the opengl mapping)

VS = """#version 330
in vec4 in_pos;
void main() { gl_Position = in_pos; }
"""
FS = """#version 330
layout(location = 0) out int out_id;
void main() { out_id = gl_PrimitiveID + 1; }
"""


class GL:
    """A headless OpenGL context drawing triangle ids (see the module docstring)."""

    def __init__(self):
        import moderngl

        self.mgl = moderngl
        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.prog = self.ctx.program(vertex_shader=VS, fragment_shader=FS)
        self.renderer = self.ctx.info.get("GL_RENDERER", "?")
        self.version = self.ctx.info.get("GL_VERSION", "?")

    def ids(self, pos: np.ndarray, faces: np.ndarray, H: int, W: int) -> np.ndarray:
        """pos float32 [V, 4] clip space, faces int [F, 3] -> int32 [H, W] = id + 1 (0 empty), row 0 = bottom.
        Triangles with a non-finite coordinate (undefined in OpenGL) are replaced by an empty one."""
        mgl, ctx = self.mgl, self.ctx
        out = np.zeros((H, W), np.int32)
        if len(faces) == 0:
            return out
        v = np.ascontiguousarray(pos[faces], dtype=np.float32)
        v[~np.isfinite(v).all(axis=(1, 2))] = 0
        tex = ctx.texture((W, H), 1, dtype="i4")
        depth = ctx.depth_renderbuffer((W, H))
        fbo = ctx.framebuffer(color_attachments=[tex], depth_attachment=depth)
        vbo = ctx.buffer(v.reshape(-1, 4).tobytes())
        vao = ctx.vertex_array(self.prog, [(vbo, "4f", "in_pos")])
        try:
            fbo.use()
            fbo.viewport = (0, 0, W, H)
            fbo.clear(0, 0, 0, 0, depth=1.0)
            ctx.disable(mgl.CULL_FACE | mgl.BLEND)
            ctx.enable(mgl.DEPTH_TEST)
            ctx.depth_func = "<"
            vao.render(mgl.TRIANGLES)
            out[:] = np.frombuffer(fbo.read(components=1, dtype="i4", alignment=1), np.int32).reshape(H, W)
        finally:
            for o in (vao, vbo, fbo, depth, tex):
                o.release()
        return out


@pytest.fixture(scope="module")
def gl():
    try:
        return GL()
    except Exception as exc:  # no moderngl, no EGL, no Mesa driver
        pytest.skip(f"OpenGL through moderngl/EGL unavailable: {type(exc).__name__}: {exc}")


def _extra_scenes():
    """Larger scenes for statistics: (name, pos [1, V, 4], faces, H, W)."""
    v, f = scenes.icosphere(4)  # 5120 faces
    mvp = scenes.perspective(40.0, 1.0, 0.5, 10.0) @ scenes.look_at((0.3, 0.8, 3.2), (0, 0, 0))
    yield "ico4_512", scenes.to_clip(v, mvp)[None], f, 512, 512
    rng = np.random.default_rng(5)  # 3000 random, interpenetrating triangles, w in [0.5, 2]
    n = 3000
    c = rng.uniform(-1.1, 1.1, (n, 1, 2))
    d = rng.normal(0, 0.12, (n, 3, 2))
    z = rng.uniform(-0.9, 0.9, (n, 3, 1))
    w = rng.uniform(0.5, 2.0, (n, 3, 1))
    p = np.concatenate([(c + d) * w, z * w, w], -1).reshape(-1, 4).astype(np.float32)
    yield "soup_256", p[None], np.arange(3 * n, dtype=np.int32).reshape(n, 3), 256, 256


def _all_scenes():
    for name in scenes.NAMES:
        s = scenes.build(name)
        yield name, (s.pos if s.pos.ndim == 3 else s.pos[None]), s.faces, s.H, s.W
    yield from _extra_scenes()


def test_row_order(gl):
    """A triangle hugging NDC y = -1 lands in row 0 of glReadPixels and of render_npu (row grows with NDC y);
    one at x = +1 in the last column."""
    pos = np.array([[-1.0, -1.0, 0, 1], [0.2, -1.0, 0, 1], [-1.0, -0.7, 0, 1], [1.0, 0.5, 0, 1], [0.8, 0.6, 0, 1],
                    [1.0, 0.7, 0, 1]], np.float32)
    faces = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    g = gl.ids(pos, faces, 16, 16)
    ours = render_npu.rasterize((16, 16), torch.from_numpy(faces), torch.from_numpy(pos), viewport="opengl",
                                backend="reference").rast[0, ..., 3].numpy().astype(np.int32)
    for ids in (g, ours):
        assert (ids[0] == 1).any() and not (ids[4:] == 1).any()  # triangle 0 in the bottom rows only
        assert (ids[:, 15] == 2).any() and not (ids[:, :12] == 2).any()  # triangle 1 at the right border
    assert np.array_equal(g, ours)


def test_tie_rule_convention(gl):
    """Characterises the tie rule on a square whose corners are pixel centres (0.5, 0.5)-(3.5, 3.5) in a
    4 x 4 image, cut along the diagonal: llvmpipe covers columns 0-2 and rows 0-2 (left and bottom edges
    in, right and top out) and gives the diagonal to the triangle below it; render_npu may differ from it
    only on the horizontal edges (rows 0 and 3) and must cover the same number of pixels (9)."""
    sx = np.array([0.5, 3.5, 3.5, 0.5])
    sy = np.array([0.5, 0.5, 3.5, 3.5])
    pos = scenes.screen_verts(sx, sy, 4, 4, "opengl")
    faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    g = gl.ids(pos, faces, 4, 4)
    expected = np.array([[1, 1, 1, 0], [2, 1, 1, 0], [2, 2, 1, 0], [0, 0, 0, 0]])  # row 0 = bottom
    assert np.array_equal(g, expected), f"llvmpipe's tie rule changed:\n{g}"
    ours = render_npu.rasterize((4, 4), torch.from_numpy(faces), torch.from_numpy(pos), viewport="opengl",
                                backend="reference").rast[0, ..., 3].numpy().astype(np.int32)
    assert (ours > 0).sum() == 9
    assert np.array_equal(ours[1:3], g[1:3]), "differences beyond the horizontal edges"


@pytest.mark.parametrize("backend", backend_params(["reference", "cpu"]))
def test_opengl_agreement(gl, backend):
    stats = {"renderer": gl.renderer, "version": gl.version, "backend": backend, "edge_tol_px": EDGE_TOL_GL,
             "depth_slack_px": DEPTH_SLACK_PX, "scenes": {}}
    failures = []
    pixels = mismatched = 0
    for name, pos, faces, H, W in _all_scenes():
        r = render_npu.rasterize((H, W), torch.from_numpy(faces), torch.from_numpy(pos), viewport="opengl",
                                 backend=backend)
        ours = (r.rast.numpy(), r.depth.numpy())
        gl_rast = np.zeros_like(ours[0])
        gl_rast[..., 3] = np.stack([gl.ids(pos[b], faces, H, W) for b in range(pos.shape[0])])
        rep = agreement_report(ours, (gl_rast, np.zeros_like(ours[1])), pos, faces, H, W, "opengl", ids_only=True,
                               edge_tol=EDGE_TOL_GL, depth_slack_px=DEPTH_SLACK_PX)
        stats["scenes"][name] = {k: rep[k] for k in ("pixels", "covered_ref", "covered_out", "id_mismatch",
                                                     "excused_edge", "excused_depth_tie", "unexcused",
                                                     "max_mismatch_edge_dist")}
        if rep["unexcused"]:
            png = write_diff_png(rep, os.path.join(ARTIFACTS, f"opengl_{name}_{backend}.png"))
            failures.append(f"{name}: {rep['unexcused']} of {rep['id_mismatch']} mismatches not excused "
                            f"({png}); first {rep['first_unexcused'][:3]}")
        if name in TIE_SCENES:
            if rep["max_mismatch_edge_dist"] > 1e-6:
                failures.append(f"{name}: mismatches off the exact pixel-centre ties "
                                f"(max edge distance {rep['max_mismatch_edge_dist']:.3g} px)")
        else:
            pixels += rep["pixels"]
            mismatched += rep["id_mismatch"]
    stats["fraction_without_tie_scenes"] = mismatched / pixels
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(os.path.join(ARTIFACTS, f"opengl_stats_{backend}.json"), "w") as fh:
        json.dump(stats, fh, indent=1)
    assert not failures, "\n".join(failures)
    assert mismatched / pixels < MAX_FRACTION, f"{mismatched} of {pixels} pixels differ from OpenGL"
    assert pixels > 400_000  # the statistics cover a meaningful number of pixels
