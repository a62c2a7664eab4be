#include "rasterize/resolve.h"

#include <stdexcept>

#include "rasterize/rasterize_cpu.h"
#include "rasterize/setup.h"

namespace render_npu {

void rasterize_backward_cpu(const double* pos, int64_t batch, int64_t num_vertices, const int32_t* faces,
                            int64_t num_faces, int height, int width, bool opengl_viewport, const float* ids,
                            const double* grad_bary, const double* grad_depth, double* grad_pos) {
  using namespace raster;
  const ScreenMap map = make_screen_map(height, width, opengl_viewport, false);
  const double ax = map.ax, bx = map.bx, ay = map.ay, by = map.by;
  const int64_t hw = int64_t(height) * width;
  for (int64_t i = 0; i < batch * num_vertices * 4; ++i) grad_pos[i] = 0.0;
  for (int64_t b = 0; b < batch; ++b) {
    const double* p = pos + b * num_vertices * 4;
    double* gp = grad_pos + b * num_vertices * 4;
    int64_t face = -1;
    ParentPlane pp;
    double acc[3][4] = {};
    // Runs of pixels showing one face accumulate in `acc` before touching grad_pos: fixed
    // (row-major pixel) order, so the result is deterministic.
    auto flush = [&]() {
      if (face < 0) return;
      const int32_t* f = faces + 3 * face;
      for (int k = 0; k < 3; ++k)
        for (int c = 0; c < 4; ++c) {
          gp[int64_t(f[k]) * 4 + c] += acc[k][c];
          acc[k][c] = 0.0;
        }
    };
    for (int64_t i = 0; i < hw; ++i) {
      const float id = ids[b * hw + i];
      if (!(id > 0.0f)) continue;
      const int64_t fid = int64_t(id) - 1;
      if (fid >= num_faces) throw std::invalid_argument("rast: triangle id out of range");
      if (fid != face) {
        flush();
        face = fid;
        const int32_t* f = faces + 3 * fid;
        for (int k = 0; k < 3; ++k)
          if (f[k] < 0 || f[k] >= num_vertices) throw std::invalid_argument("faces: index out of range");
        parent_plane(p + 4 * int64_t(f[0]), p + 4 * int64_t(f[1]), p + 4 * int64_t(f[2]), ax, bx, ay, by, pp);
      }
      const int64_t pix = b * hw + i;
      double gb[3] = {0.0, 0.0, 0.0};
      if (grad_bary) {
        gb[0] = grad_bary[pix * 3];
        gb[1] = grad_bary[pix * 3 + 1];
        gb[2] = grad_bary[pix * 3 + 2];
      }
      const double gd = grad_depth ? grad_depth[pix] : 0.0;
      resolve_pixel_grad(pp, ax, bx, ay, by, int(i % width), int(i / width), gb, gd, acc);
    }
    flush();
  }
}

}  // namespace render_npu
