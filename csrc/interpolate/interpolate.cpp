// Compiled interpolate: see interpolate.h. Plain loops over pixels; the forward pass computes
// out = (b0 * a0 + b1 * a1) + b2 * a2 in T, left to right, as the torch path does (no FMA:
// CMakeLists.txt builds with -ffp-contract=off), so both give the same bits.
#include "interpolate/interpolate.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

namespace render_npu {
namespace {

// Calls fn(begin, end) on `threads` contiguous slices of [0, n) (the caller's thread takes the
// first); slices never overlap, so results cannot depend on the split.
template <typename Fn>
void parallel_for(int64_t n, int threads, int64_t min_per_thread, Fn fn) {
  if (n <= 0) return;
  int64_t t = std::max<int64_t>(1, std::min<int64_t>(threads, (n + min_per_thread - 1) / min_per_thread));
  if (t == 1) {
    fn(int64_t(0), n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(size_t(t - 1));
  for (int64_t i = 1; i < t; ++i) pool.emplace_back([&, i] { fn(n * i / t, n * (i + 1) / t); });
  fn(int64_t(0), n / t);
  for (auto& th : pool) th.join();
}

// id + 1 as an int64, or -1 when it is not an integer in [0, F] (NaN included).
template <typename I>
inline int64_t read_id(I v, int64_t F) {
  if constexpr (std::is_integral_v<I>) {
    return (v >= 0 && int64_t(v) <= F) ? int64_t(v) : -1;
  } else {
    if (!(v >= I(0) && v <= I(F))) return -1;
    const int64_t i = int64_t(v);
    return I(i) == v ? i : -1;
  }
}

constexpr int64_t kMinPixelsPerThread = 16384;

}  // namespace

// Pixels [begin, end) with the channel count known at compile time (KC > 0) or not (KC == 0).
template <int KC, typename T, typename I>
void forward_range(const InterpolateArgs<T, I>& a, T* out, int64_t begin, int64_t end, std::atomic<int64_t>& bad) {
  const int64_t C = KC > 0 ? KC : a.channels, P = a.pixels, F = a.num_faces;
  int64_t b = begin / P, next = (b + 1) * P;  // batch item of pixel p (no division per pixel)
  const T* at = a.attr + b * a.attr_batch_stride;
  for (int64_t p = begin; p < end; ++p) {
    if (p == next) {
      ++b, next += P;
      at = a.attr + b * a.attr_batch_stride;
    }
    T* o = out + p * C;
    const int64_t id = read_id(a.ids[p * a.id_stride], F);
    if (id <= 0) {
      if (id < 0) {
        int64_t expected = -1;
        bad.compare_exchange_strong(expected, p);
      }
      for (int64_t c = 0; c < C; ++c) o[c] = a.background ? a.background[c] : T(0);
      if (a.out_db) std::fill(a.out_db + p * 2 * C, a.out_db + (p + 1) * 2 * C, T(0));
      continue;
    }
    const int32_t* f = a.faces + (id - 1) * 3;
    const T* v0 = at + int64_t(f[0]) * C;
    const T* v1 = at + int64_t(f[1]) * C;
    const T* v2 = at + int64_t(f[2]) * C;
    const T* bc = a.bary + p * a.bary_stride;
    const T b0 = bc[0], b1 = bc[1], b2 = bc[2];
    for (int64_t c = 0; c < C; ++c) {
      const T s = b0 * v0[c] + b1 * v1[c];
      o[c] = s + b2 * v2[c];
    }
    if (a.out_db) {  // the same sum with each axis' weights (du, dv, -(du + dv)): the torch path's bits
      const T* d = a.db + p * a.db_stride;
      const T x0 = d[0], x1 = d[2], x2 = -(d[0] + d[2]), y0 = d[1], y1 = d[3], y2 = -(d[1] + d[3]);
      T* od = a.out_db + p * 2 * C;
      for (int64_t c = 0; c < C; ++c) {
        const T sx = x0 * v0[c] + x1 * v1[c];
        const T sy = y0 * v0[c] + y1 * v1[c];
        od[2 * c] = sx + x2 * v2[c];
        od[2 * c + 1] = sy + y2 * v2[c];
      }
    }
  }
}

template <typename T, typename I>
int64_t interpolate_forward(const InterpolateArgs<T, I>& a, T* out) {
  const int64_t total = a.batch * a.pixels;
  std::atomic<int64_t> bad{-1};
  parallel_for(total, a.num_threads, kMinPixelsPerThread, [&](int64_t begin, int64_t end) {
    switch (a.channels) {  // common channel counts unrolled
      case 1: forward_range<1>(a, out, begin, end, bad); break;
      case 2: forward_range<2>(a, out, begin, end, bad); break;
      case 3: forward_range<3>(a, out, begin, end, bad); break;
      case 4: forward_range<4>(a, out, begin, end, bad); break;
      default: forward_range<0>(a, out, begin, end, bad); break;
    }
  });
  return bad.load();
}

template <typename T, typename I>
void interpolate_backward(const InterpolateArgs<T, I>& a, const T* grad_out, T* grad_attr, T* grad_bary) {
  const int64_t C = a.channels, P = a.pixels, V = a.num_vertices, total = a.batch * P;
  if (grad_bary) {
    parallel_for(total, a.num_threads, kMinPixelsPerThread, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        T* gb = grad_bary + p * 3;
        const int64_t id = read_id(a.ids[p * a.id_stride], a.num_faces);
        if (id <= 0) {
          gb[0] = gb[1] = gb[2] = T(0);
          continue;
        }
        const int32_t* f = a.faces + (id - 1) * 3;
        const T* at = a.attr + (p / P) * a.attr_batch_stride;
        const T* g = grad_out + p * C;
        for (int k = 0; k < 3; ++k) {
          const T* v = at + int64_t(f[k]) * C;
          T s = T(0);
          for (int64_t c = 0; c < C; ++c) s += g[c] * v[c];
          gb[k] = s;
        }
      }
    });
  }
  if (!grad_attr) return;
  // Scatter: pixels are cut into a number of chunks that depends only on the sizes; each chunk
  // accumulates into its own buffer (in pixel order), then buffers are summed in chunk order.
  const int64_t batches = a.attr_batch_stride ? a.batch : 1;
  const int64_t n = batches * V * C;
  int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(16, total / 65536));
  while (chunks > 1 && chunks * n * int64_t(sizeof(T)) > (int64_t(256) << 20)) chunks /= 2;
  std::vector<T> scratch(size_t((chunks - 1) * n));
  auto buffer = [&](int64_t i) { return i == 0 ? grad_attr : scratch.data() + (i - 1) * n; };
  std::atomic<int64_t> next{0};
  const int threads = int(std::max<int64_t>(1, std::min<int64_t>(a.num_threads, chunks)));
  parallel_for(threads, threads, 1, [&](int64_t, int64_t) {
    for (int64_t ch; (ch = next.fetch_add(1)) < chunks;) {
      T* acc = buffer(ch);
      std::fill(acc, acc + n, T(0));
      const int64_t begin = total * ch / chunks, end = total * (ch + 1) / chunks;
      for (int64_t p = begin; p < end; ++p) {
        const int64_t id = read_id(a.ids[p * a.id_stride], a.num_faces);
        if (id <= 0) continue;
        const int32_t* f = a.faces + (id - 1) * 3;
        T* ab = acc + (a.attr_batch_stride ? (p / P) * V * C : 0);
        const T* g = grad_out + p * C;
        const T* b = a.bary + p * a.bary_stride;
        for (int k = 0; k < 3; ++k) {
          T* v = ab + int64_t(f[k]) * C;
          const T bk = b[k];
          for (int64_t c = 0; c < C; ++c) v[c] += bk * g[c];
        }
      }
    }
  });
  if (chunks > 1) {
    parallel_for(n, a.num_threads, 65536, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        T s = grad_attr[i];
        for (int64_t ch = 1; ch < chunks; ++ch) s += buffer(ch)[i];
        grad_attr[i] = s;
      }
    });
  }
}

#define RENDER_NPU_INSTANTIATE(T, I)                                                             \
  template int64_t interpolate_forward<T, I>(const InterpolateArgs<T, I>&, T*);                 \
  template void interpolate_backward<T, I>(const InterpolateArgs<T, I>&, const T*, T*, T*);
RENDER_NPU_INSTANTIATE(float, float)
RENDER_NPU_INSTANTIATE(float, int32_t)
RENDER_NPU_INSTANTIATE(double, double)
RENDER_NPU_INSTANTIATE(double, int32_t)
RENDER_NPU_INSTANTIATE(float, double)
RENDER_NPU_INSTANTIATE(double, float)
#undef RENDER_NPU_INSTANTIATE

}  // namespace render_npu
