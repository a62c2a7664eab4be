"""OpenGL (Mesa llvmpipe through moderngl's EGL backend) as an external rasterizer: draws clip-space
triangles into an R32I attachment holding ``gl_PrimitiveID + 1`` with a LESS depth test.
Used by benchmarks/bench_rasterize.py (and mirrors what tests/test_opengl.py checks)."""
from __future__ import annotations

import numpy as np

VERT = """
#version 330
in vec4 in_pos;
void main() { gl_Position = in_pos; }
"""
FRAG = """
#version 330
out int out_id;
void main() { out_id = gl_PrimitiveID + 1; }
"""


class GLRasterizer:
    """One EGL context; ``draw(pos_clip [V,4] float32, faces [F,3] int32, H, W)`` -> ids int32 [H, W]
    (row 0 = NDC y -1, as render_npu)."""

    def __init__(self):
        import moderngl

        self.mgl = moderngl
        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.prog = self.ctx.program(vertex_shader=VERT, fragment_shader=FRAG)
        self._fbo_size = None

    @property
    def renderer(self) -> str:
        return self.ctx.info.get("GL_RENDERER", "?")

    def _fbo(self, H, W):
        if self._fbo_size != (H, W):
            color = self.ctx.renderbuffer((W, H), components=1, dtype="i4")
            depth = self.ctx.depth_renderbuffer((W, H))
            self.fbo = self.ctx.framebuffer([color], depth)
            self._fbo_size = (H, W)
        return self.fbo

    def prepare(self, pos_clip: np.ndarray, faces: np.ndarray):
        vbo = self.ctx.buffer(np.ascontiguousarray(pos_clip, dtype=np.float32).tobytes())
        ibo = self.ctx.buffer(np.ascontiguousarray(faces, dtype=np.int32).tobytes())
        return self.ctx.vertex_array(self.prog, [(vbo, "4f", "in_pos")], ibo, index_element_size=4)

    def draw(self, vao, H: int, W: int) -> np.ndarray:
        fbo = self._fbo(H, W)
        fbo.use()
        self.ctx.enable(self.mgl.DEPTH_TEST)
        self.ctx.depth_func = "<"
        fbo.clear(0, 0, 0, 0, depth=1.0)
        vao.render(self.mgl.TRIANGLES)
        data = fbo.read(components=1, dtype="i4", attachment=0)
        return np.frombuffer(data, dtype=np.int32).reshape(H, W)
