#include "rasterize/resolve.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "rasterize/barrier.h"
#include "rasterize/rasterize_cpu.h"
#include "rasterize/setup.h"
#include "rasterize/simd.h"

namespace render_npu {
namespace {

using namespace raster;

constexpr int kBlockRows = 16;     // rows of pixels per work item
constexpr int kWaveBlocks = 16;    // blocks per wave (at least; 4 per thread): bounds the records' memory
constexpr int kBatchPixels = 256;  // pixels handed to the per-pixel kernel at a time (L1-sized)

// Per-face constants (doubles): the parent plane (resolve.h) and the centre of the face's first
// pixel in the block, the origin of the face sums' p and q.
constexpr int kHx = 0, kHy = 3, kZ = 6, kW = 9, kP0 = 12, kQ0 = 13, kConst = 16;
constexpr int kAcc = 20;  // face sums (resolve_grad_impl.inc), 18 used

// Covered pixels with a nonzero upstream gradient, structure of arrays; `slot`: their face's
// index in the block's face table (0: a padding entry).
struct PixelBatch {
  double* P;
  double* Q;
  double* gb[3];
  double* gd;
  int32_t* slot;
};

namespace portable {
#define RNPU_RESOLVE_AVX2 0
#include "rasterize/resolve_grad_impl.inc"
#undef RNPU_RESOLVE_AVX2
}  // namespace portable

#if RNPU_HAVE_AVX2
// Compiled for AVX2 and only called after a run-time CPU check.
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
#define RNPU_RESOLVE_AVX2 1
#include "rasterize/resolve_grad_impl.inc"
#undef RNPU_RESOLVE_AVX2
}  // namespace avx2
#pragma GCC pop_options
#endif

// One face's summed gradient over its pixels in one block, for one of its vertices: the row of
// grad_pos (batch item included) and d(loss)/d(x, y, z, w).
struct Contrib {
  int64_t row;
  double g[4];
};

// A block's contributions grouped by bucket (a range of grad_pos rows, added by one task), in
// order of emission (faces in order of their first pixel, then vertex order) within each bucket.
// Every row's sum therefore runs over blocks in order, then in emission order, whatever the
// number of buckets or threads.
struct BlockOut {
  std::vector<Contrib> c;
  std::vector<int64_t> start;  // [buckets + 1]: bucket k is c[start[k], start[k + 1])
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
  bool avx2;
  int buckets;           // BlockOut buckets: grad_pos rows [k span, (k + 1) span) go to bucket k
  int64_t bucket_span;
};

// d(loss)/d(x, y, z, w) of the face's three vertices from its sums `acc` (layout in
// resolve_grad_impl.inc) and constants `k`: with r_j = R_j - p w_j, s_j = S_j - q w_j around the
// origin (P0, Q0), each pixel's dL/dr = s x gu, dL/ds = gu x r (u = r x s) and
// dL/dx_k = ax dL/dr_k, dL/dy_k = ay dL/ds_k, dL/dz_k = c u_k,
// dL/dw_k = -c d u_k + (bx - P) dL/dr_k + (by - Q) dL/ds_k, summed over the pixels.
void chain_face(const double* k, const double* acc, double ax, double bx, double ay, double by, double g[3][4]) {
  const double P0 = k[kP0], Q0 = k[kQ0];
  const double* w = k + kW;
  double R[3], S[3];
  for (int j = 0; j < 3; ++j) {  // r and s at the origin, as the forward forms them
    R[j] = k[kHx + j] - P0 * w[j];
    S[j] = k[kHy + j] - Q0 * w[j];
  }
  const double *A = acc, *Ap = acc + 3, *Aq = acc + 6, *Apq = acc + 9;
  for (int i = 0; i < 3; ++i) {
    const int n = (i + 1) % 3, m = (i + 2) % 3;  // dL/dr_i = s_n gu_m - s_m gu_n, dL/ds_i = gu_n r_m - gu_m r_n
    const double gr = (S[n] * A[m] - S[m] * A[n]) - (w[n] * Aq[m] - w[m] * Aq[n]);
    const double gs = (R[m] * A[n] - R[n] * A[m]) - (w[m] * Ap[n] - w[n] * Ap[m]);
    const double pgr = (S[n] * Ap[m] - S[m] * Ap[n]) - (w[n] * Apq[m] - w[m] * Apq[n]);  // sum p dL/dr_i
    const double qgs = (R[m] * Aq[n] - R[n] * Aq[m]) - (w[m] * Apq[n] - w[n] * Apq[m]);  // sum q dL/ds_i
    g[i][0] = ax * gr;
    g[i][1] = ay * gs;
    g[i][2] = acc[12 + i];
    g[i][3] = (((bx - P0) * gr - pgr) + ((by - Q0) * gs - qgs)) - acc[15 + i];
  }
}

// A thread's scratch: the block's face table (open addressing on batch * F + face) with the
// faces' constants and sums, and a batch of pixels for the per-pixel kernel.
struct BlockScratch {
  std::vector<int64_t> table_key;  // -1: empty
  std::vector<int32_t> table_slot;
  std::vector<int32_t> slot_pos;   // per slot: its table position
  std::vector<int64_t> slot_key;   // per slot: its key (slot 0: -1)
  std::vector<int32_t> column_slot;  // per column: the slot of the last covered pixel above (or 0)
  std::vector<int64_t> slot_vertex;  // per slot: 3 rows of grad_pos
  std::vector<uint8_t> slot_used;  // per slot: has a pixel with a nonzero upstream gradient
  std::vector<double> cst, acc;    // per slot: kConst constants, kAcc sums
  int32_t slots = 1;               // slot 0: the padding entries' face (never read back)
  std::vector<double> buf;         // PixelBatch storage
  std::vector<int32_t> slot_buf;
  std::vector<Contrib> contribs;   // a block's contributions before grouping
  std::vector<int64_t> bucket_fill;
  PixelBatch batch;
  int n = 0;

  BlockScratch() : table_key(1024, -1), table_slot(1024), buf(6 * (kBatchPixels + 4)), slot_buf(kBatchPixels + 4) {
    double* b = buf.data();
    const int c = kBatchPixels + 4;
    batch = PixelBatch{b, b + c, {b + 2 * c, b + 3 * c, b + 4 * c}, b + 5 * c, slot_buf.data()};
    grow_slots(256);
  }
  void grow_slots(size_t cap) {
    slot_pos.resize(cap);
    slot_key.resize(cap, -1);
    slot_vertex.resize(3 * cap);
    slot_used.resize(cap);
    cst.resize(kConst * cap, 0.0);
    acc.resize(kAcc * cap);
  }
  static size_t hash(int64_t key, size_t mask) {
    return size_t((uint64_t(key) * 0x9E3779B97F4A7C15ull) >> 32) & mask;
  }
  // The slot of `key`, or -1 (then `pos` is where it goes).
  int32_t find(int64_t key, size_t& pos) const {
    const size_t mask = table_key.size() - 1;
    for (pos = hash(key, mask);; pos = (pos + 1) & mask) {
      if (table_key[pos] == key) return table_slot[pos];
      if (table_key[pos] < 0) return -1;
    }
  }
  int32_t insert(int64_t key, size_t pos) {
    if (size_t(slots + 1) * 2 > table_key.size()) {  // keep the load <= 1/2
      std::vector<int64_t> old_key(table_key.size() * 2, -1);
      table_key.swap(old_key);
      table_slot.assign(table_key.size(), 0);
      for (int32_t s = 1; s < slots; ++s) {
        const int64_t kk = old_key[slot_pos[s]];
        size_t p;
        find(kk, p);
        table_key[p] = kk;
        table_slot[p] = s;
        slot_pos[s] = int32_t(p);
      }
      find(key, pos);
    }
    if (size_t(slots) >= slot_pos.size()) grow_slots(slot_pos.size() * 2);
    const int32_t s = slots++;
    table_key[pos] = key;
    table_slot[pos] = s;
    slot_pos[s] = int32_t(pos);
    slot_key[s] = key;
    return s;
  }
  void clear() {
    for (int32_t s = 1; s < slots; ++s) table_key[slot_pos[s]] = -1;
    slots = 1;
  }
  void flush(bool avx2) {
    if (n == 0) return;
    const int lanes = avx2 ? 4 : 1;
    for (; n % lanes; ++n) {  // padding: slot 0, zero constants (their terms are never read)
      batch.P[n] = batch.Q[n] = batch.gd[n] = batch.gb[0][n] = batch.gb[1][n] = batch.gb[2][n] = 0.0;
      batch.slot[n] = 0;
    }
#if RNPU_HAVE_AVX2
    if (avx2)
      avx2::accumulate_pixels(batch, n, cst.data(), acc.data());
    else
#endif
      portable::accumulate_pixels(batch, n, cst.data(), acc.data());
    n = 0;
  }
};

template <typename G>
void block_grads(const BackwardArgs<G>& a, int64_t block, BlockScratch& sc, BlockOut& out) {
  const int64_t rows = a.batch * a.H;
  const int64_t r0 = block * kBlockRows, r1 = std::min<int64_t>(rows, r0 + kBlockRows);
  int64_t last_key = -1;
  int32_t slot = 0;
  sc.column_slot.assign(size_t(a.W), 0);
  int32_t* column_slot = sc.column_slot.data();
  static const double zeros[kAcc] = {};
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t b = row / a.H;
    const int py = int(row % a.H);
    const double Q = double(py) + 0.5;
    const int64_t pix0 = row * a.W;
    for (int px = 0; px < a.W; ++px) {
      const int64_t pix = pix0 + px;
      const float id = a.rast[pix * 4 + 3];
      if (!(id > 0.0f)) continue;
      const int64_t fid = int64_t(id) - 1;
      if (fid >= a.F) throw std::invalid_argument("rast: triangle id out of range");
      const int64_t key = b * a.F + fid;
      if (key != last_key) {
        last_key = key;
        // most faces continue from the row above (cached in L1); otherwise the table
        size_t pos = 0;
        slot = column_slot[px];
        if (sc.slot_key[slot] != key) slot = sc.find(key, pos);
        if (slot < 0) {  // first pixel of this face in the block
          const int32_t* f = a.faces + 3 * fid;
          for (int k = 0; k < 3; ++k)
            if (f[k] < 0 || f[k] >= a.V) throw std::invalid_argument("faces: index out of range");
          slot = sc.insert(key, pos);
          const double* p = a.pos + b * a.V * 4;
          ParentPlane pp;
          parent_plane(p + 4 * int64_t(f[0]), p + 4 * int64_t(f[1]), p + 4 * int64_t(f[2]), a.ax, a.bx, a.ay, a.by,
                       pp);
          double* k = sc.cst.data() + int64_t(slot) * kConst;
          for (int j = 0; j < 3; ++j) {
            k[kHx + j] = pp.hx[j];
            k[kHy + j] = pp.hy[j];
            k[kZ + j] = pp.z[j];
            k[kW + j] = pp.w[j];
            sc.slot_vertex[3 * slot + j] = b * a.V + f[j];
          }
          k[kP0] = double(px) + 0.5;
          k[kQ0] = Q;
          std::memcpy(sc.acc.data() + int64_t(slot) * kAcc, zeros, sizeof(zeros));  // (fixed size: inline stores)
          sc.slot_used[slot] = 0;
        }
      }
      column_slot[px] = slot;
      double gb0 = 0.0, gb1 = 0.0, gb2 = 0.0;
      if (a.grad_bary) {
        const G* g = a.grad_bary + pix * a.bary_stride;
        gb0 = double(g[0]);
        gb1 = double(g[1]);
        gb2 = double(g[2]);
      }
      const double gd = a.grad_depth ? double(a.grad_depth[pix]) : 0.0;
      if (gb0 == 0.0 && gb1 == 0.0 && gb2 == 0.0 && gd == 0.0) continue;  // no gradient through this pixel
      PixelBatch& e = sc.batch;
      e.P[sc.n] = double(px) + 0.5;
      e.Q[sc.n] = Q;
      e.gb[0][sc.n] = gb0;
      e.gb[1][sc.n] = gb1;
      e.gb[2][sc.n] = gb2;
      e.gd[sc.n] = gd;
      e.slot[sc.n] = slot;
      sc.slot_used[slot] = 1;
      if (++sc.n == kBatchPixels) sc.flush(a.avx2);
    }
  }
  sc.flush(a.avx2);
  sc.contribs.clear();
  out.start.assign(size_t(a.buckets) + 1, 0);
  for (int32_t s = 1; s < sc.slots; ++s) {
    if (!sc.slot_used[s]) continue;
    double g[3][4];
    chain_face(sc.cst.data() + int64_t(s) * kConst, sc.acc.data() + int64_t(s) * kAcc, a.ax, a.bx, a.ay, a.by, g);
    for (int j = 0; j < 3; ++j) {
      const int64_t row = sc.slot_vertex[3 * s + j];
      sc.contribs.push_back(Contrib{row, {g[j][0], g[j][1], g[j][2], g[j][3]}});
      ++out.start[size_t(row / a.bucket_span) + 1];
    }
  }
  sc.clear();
  for (int k = 0; k < a.buckets; ++k) out.start[k + 1] += out.start[k];
  out.c.resize(sc.contribs.size());
  std::vector<int64_t>& fill = sc.bucket_fill;  // stable grouping by bucket
  fill.assign(out.start.begin(), out.start.end() - 1);
  for (const Contrib& c : sc.contribs) out.c[size_t(fill[size_t(c.row / a.bucket_span)]++)] = c;
}

// Phases p = 0 .. waves: the blocks of wave p (if any) and the addition of wave p - 1's
// contributions into grad_pos, one task per bucket (if any), all claimed one task at a time by the
// threads (a thread the OS delays holds up nobody); a barrier between phases.
template <typename G>
void backward_impl(BackwardArgs<G> a, int num_threads, double* grad_pos) {
  std::fill(grad_pos, grad_pos + a.batch * a.V * 4, 0.0);
  const int64_t blocks = (a.batch * a.H + kBlockRows - 1) / kBlockRows;
  const int requested = int(std::max<int64_t>(1, std::min<int64_t>({num_threads, blocks, int64_t(kMaxThreads)})));
  Barrier barrier;
  std::vector<BlockScratch> scratch;
  std::vector<BlockOut> outs[2];
  std::unique_ptr<std::atomic<int>[]> next;
  int wave = 1;
  int64_t waves = 0;
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  auto fail = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = e;
    failed = true;
  };
  auto add_bucket = [&](const std::vector<BlockOut>& wave_outs, int n, int k) {
    for (int i = 0; i < n; ++i) {
      const BlockOut& o = wave_outs[size_t(i)];
      for (int64_t j = o.start[size_t(k)]; j < o.start[size_t(k) + 1]; ++j) {
        const Contrib& c = o.c[size_t(j)];
        double* g = grad_pos + c.row * 4;
        g[0] += c.g[0], g[1] += c.g[1], g[2] += c.g[2], g[3] += c.g[3];
      }
    }
  };
  auto work = [&](int t) {
    for (int64_t p = 0; p <= waves; ++p) {  // every thread passes every barrier
      const int reduce = p > 0 ? a.buckets : 0;
      const int prev = p > 0 ? int(std::min<int64_t>(wave, blocks - (p - 1) * wave)) : 0;
      const int n = p < waves ? int(std::min<int64_t>(wave, blocks - p * wave)) : 0;
      for (int i = next[p]++; i < reduce + n; i = next[p]++) {
        if (failed) continue;
        try {
          if (i < reduce)
            add_bucket(outs[(p - 1) & 1], prev, i);
          else
            block_grads(a, p * wave + (i - reduce), scratch[size_t(t)], outs[p & 1][size_t(i - reduce)]);
        } catch (...) {
          fail(std::current_exception());
        }
      }
      barrier.wait();
    }
  };
  run_team(
      requested,
      [&](int threads) {
        try {
          a.buckets = threads;
          a.bucket_span = std::max<int64_t>(1, (a.batch * a.V + threads - 1) / threads);
          wave = std::max(kWaveBlocks, 4 * threads);
          waves = (blocks + wave - 1) / wave;
          scratch.resize(size_t(threads));
          outs[0].resize(size_t(wave));
          outs[1].resize(size_t(wave));
          next.reset(new std::atomic<int>[size_t(waves) + 1]());
        } catch (...) {
          fail(std::current_exception());
          waves = -1;  // no phase: every thread returns at once
        }
        barrier.set_count(threads);
      },
      work);
  if (error) std::rethrow_exception(error);
}

}  // namespace

template <typename G>
void rasterize_backward_cpu(const double* pos, int64_t batch, int64_t num_vertices, const int32_t* faces,
                            int64_t num_faces, int height, int width, bool opengl_viewport, const float* rast,
                            const G* grad_bary, int bary_stride, const G* grad_depth, int num_threads,
                            double* grad_pos, RasterKernel kernel) {
  if (kernel == RasterKernel::kAvx2 && !cpu_has_avx2())
    throw std::invalid_argument("rasterize_backward: the avx2 kernel needs a CPU with AVX2");
  const bool avx2 = kernel == RasterKernel::kAvx2 || (kernel == RasterKernel::kAuto && cpu_has_avx2());
  const ScreenMap map = make_screen_map(height, width, opengl_viewport, false);
  const BackwardArgs<G> a{pos,    batch,  num_vertices, faces,     num_faces,   height,     width, map.ax,
                          map.bx, map.ay, map.by,       rast,      grad_bary,   bary_stride, grad_depth, avx2,
                          1,      1};
  backward_impl(a, num_threads < 1 ? 1 : num_threads, grad_pos);
}

template void rasterize_backward_cpu<float>(const double*, int64_t, int64_t, const int32_t*, int64_t, int, int, bool,
                                            const float*, const float*, int, const float*, int, double*,
                                            RasterKernel);
template void rasterize_backward_cpu<double>(const double*, int64_t, int64_t, const int32_t*, int64_t, int, int, bool,
                                             const float*, const double*, int, const double*, int, double*,
                                             RasterKernel);

}  // namespace render_npu
