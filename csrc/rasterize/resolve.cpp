#include "rasterize/resolve.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "rasterize/rasterize_cpu.h"
#include "rasterize/setup.h"

namespace render_npu {
namespace {

using namespace raster;

constexpr int kBlockRows = 16;     // rows of pixels per work item
constexpr int kWaveBlocks = 64;    // work items in flight: bounds the run records' memory

// A run of consecutive pixels (row-major, within one block) showing one face: its summed
// gradient. Records are added to grad_pos in block order, so the sum does not depend on the
// number of threads.
struct Run {
  int64_t vertex[3];  // rows of grad_pos (batch item included)
  double g[3][4];
};

template <typename G>
struct BackwardArgs {
  const double* pos;
  int64_t batch, V;
  const int32_t* faces;
  int64_t F;
  int H, W;
  double ax, bx, ay, by;
  const float* rast;  // [B, H, W, 4]: ids + 1 in channel 3
  const G* grad_bary;  // [B, H, W, bary_stride], channels 0..2, or null
  int bary_stride;
  const G* grad_depth;  // [B, H, W] or null
};

template <typename G>
void block_runs(const BackwardArgs<G>& a, int64_t block, std::vector<Run>& runs) {
  runs.clear();
  const int64_t rows = a.batch * a.H;
  const int64_t r0 = block * kBlockRows, r1 = std::min<int64_t>(rows, r0 + kBlockRows);
  int64_t face = -1, cur_b = -1;
  ParentPlane pp;
  Run run;
  auto flush = [&]() {
    if (face >= 0) runs.push_back(run);
    face = -1;
  };
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t b = row / a.H;
    const int py = int(row % a.H);
    const int64_t pix0 = row * a.W;
    for (int px = 0; px < a.W; ++px) {
      const int64_t pix = pix0 + px;
      const float id = a.rast[pix * 4 + 3];
      if (!(id > 0.0f)) continue;
      const int64_t fid = int64_t(id) - 1;
      if (fid >= a.F) throw std::invalid_argument("rast: triangle id out of range");
      if (fid != face || b != cur_b) {
        flush();
        face = fid;
        cur_b = b;
        const int32_t* f = a.faces + 3 * fid;
        const double* p = a.pos + b * a.V * 4;
        for (int k = 0; k < 3; ++k) {
          if (f[k] < 0 || f[k] >= a.V) throw std::invalid_argument("faces: index out of range");
          run.vertex[k] = b * a.V + f[k];
          for (int c = 0; c < 4; ++c) run.g[k][c] = 0.0;
        }
        parent_plane(p + 4 * int64_t(f[0]), p + 4 * int64_t(f[1]), p + 4 * int64_t(f[2]), a.ax, a.bx, a.ay, a.by, pp);
      }
      double gb[3] = {0.0, 0.0, 0.0};
      if (a.grad_bary) {
        const G* g = a.grad_bary + pix * a.bary_stride;
        gb[0] = double(g[0]);
        gb[1] = double(g[1]);
        gb[2] = double(g[2]);
      }
      const double gd = a.grad_depth ? double(a.grad_depth[pix]) : 0.0;
      resolve_pixel_grad(pp, a.ax, a.bx, a.ay, a.by, px, py, gb, gd, run.g);
    }
  }
  flush();
}

template <typename G>
void backward_impl(const BackwardArgs<G>& a, int num_threads, double* grad_pos) {
  std::fill(grad_pos, grad_pos + a.batch * a.V * 4, 0.0);
  const int64_t blocks = (a.batch * a.H + kBlockRows - 1) / kBlockRows;
  std::vector<std::vector<Run>> runs(kWaveBlocks);
  std::exception_ptr error;
  std::mutex error_mutex;
  for (int64_t w0 = 0; w0 < blocks; w0 += kWaveBlocks) {
    const int n = int(std::min<int64_t>(kWaveBlocks, blocks - w0));
    auto work = [&](int t, int step) {
      try {
        for (int i = t; i < n; i += step) block_runs(a, w0 + i, runs[i]);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    };
    const int threads = std::max(1, std::min(num_threads, n));
    std::vector<std::thread> workers;
    try {
      for (int t = 1; t < threads; ++t) workers.emplace_back(work, t, threads);
    } catch (const std::system_error&) {
    }
    // Thread creation may fail: the calling thread then takes the remaining strides itself.
    const int started = int(workers.size()) + 1;
    for (int t = 0; t < threads; ++t)
      if (t == 0 || t >= started) work(t, threads);
    for (auto& th : workers) th.join();
    if (error) std::rethrow_exception(error);
    for (int i = 0; i < n; ++i)
      for (const Run& r : runs[i])
        for (int k = 0; k < 3; ++k)
          for (int c = 0; c < 4; ++c) grad_pos[r.vertex[k] * 4 + c] += r.g[k][c];
  }
}

}  // namespace

template <typename G>
void rasterize_backward_cpu(const double* pos, int64_t batch, int64_t num_vertices, const int32_t* faces,
                            int64_t num_faces, int height, int width, bool opengl_viewport, const float* rast,
                            const G* grad_bary, int bary_stride, const G* grad_depth, int num_threads,
                            double* grad_pos) {
  const ScreenMap map = make_screen_map(height, width, opengl_viewport, false);
  const BackwardArgs<G> a{pos, batch, num_vertices, faces, num_faces, height, width, map.ax, map.bx, map.ay, map.by,
                          rast, grad_bary, bary_stride, grad_depth};
  backward_impl(a, num_threads < 1 ? 1 : num_threads, grad_pos);
}

template void rasterize_backward_cpu<float>(const double*, int64_t, int64_t, const int32_t*, int64_t, int, int, bool,
                                            const float*, const float*, int, const float*, int, double*);
template void rasterize_backward_cpu<double>(const double*, int64_t, int64_t, const int32_t*, int64_t, int, int, bool,
                                             const float*, const double*, int, const double*, int, double*);

}  // namespace render_npu
