// See splat.h. float32 arithmetic, no FMA contraction (CMakeLists.txt: -ffp-contract=off), so each
// texel's sums are a sequential float32 sum of value * weight in the documented order.
#include "splat/splat.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

namespace render_npu {
namespace {

// Calls fn(k, begin, end) on `parts` contiguous slices of [0, n) (slice 0 on the calling thread).
template <typename Fn>
void run_parts(int64_t n, int64_t parts, Fn fn) {
  if (parts <= 1) {
    fn(int64_t(0), int64_t(0), n);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t k = 1; k < parts; ++k) pool.emplace_back([&, k] { fn(k, n * k / parts, n * (k + 1) / parts); });
  fn(int64_t(0), int64_t(0), n / parts);
  for (auto& th : pool) th.join();
}

// The calling thread's accumulator: all zeros between calls (the output pass clears what it
// read), so a 2048^2 bake neither allocates nor zero-fills per call. calloc'd: a fresh block is the
// kernel's zero pages, faulted in where the first bake writes (no memset of ~100 MB). Plain pages:
// asking for transparent huge pages cost 130-200 ms of compaction on the first call on the
// development VM and nothing measurable afterwards.
struct Accumulator {
  float* data = nullptr;
  size_t size = 0;
  ~Accumulator() { std::free(data); }
  float* get(size_t n) {
    if (n <= size) return data;
    std::free(data);
    data = nullptr;
    size = 0;
    data = static_cast<float*>(std::calloc(n, sizeof(float)));
    if (!data) throw std::bad_alloc();
    size = n;
    return data;
  }
};
thread_local Accumulator t_acc;

// A sample's top-left texel and fractions: floor then clamp, in int64 (a NaN coordinate lands on
// texel 0, like a float->long cast); the fractions from the clamped texel (float32).
inline void locate(const float* coord, float sh, float sw, int64_t height, int64_t width, int64_t& r0, int64_t& c0,
                   float& h, float& w) {
  const float y = coord[0] * sh, x = coord[1] * sw;
  const float fy = std::floor(y), fx = std::floor(x);
  r0 = std::isnan(fy) ? 0 : int64_t(std::max(std::min(fy, 9.0e18f), -9.0e18f));
  c0 = std::isnan(fx) ? 0 : int64_t(std::max(std::min(fx, 9.0e18f), -9.0e18f));
  r0 = std::min(std::max(r0, int64_t(0)), height - 2);
  c0 = std::min(std::max(c0, int64_t(0)), width - 2);
  h = y - float(r0);
  w = x - float(c0);
}

// The additions of every sample with a corner in rows [r_begin, r_end), into the interleaved
// accumulator acc [H * W, K] (K = channels + extras + 1: the weight last). CC / EE > 0: the channel
// counts fixed at compile time (the bake's 3 + 1 or 3 + 2); 0: read at run time.
template <int CC, int EE>
void add_band(const SplatArgs& a, const std::vector<int64_t>& extras, const float* lut, float* acc, int64_t r_begin,
              int64_t r_end) {
  const int64_t C = CC ? CC : a.channels, E = EE ? EE : int64_t(extras.size()), K = C + E + 1;
  const int64_t height = a.height, width = a.width, n = a.n;
  const float sh = float(height - 1), sw = float(width - 1);
  std::vector<float> vbuf(size_t(C + E));
  float* v = vbuf.data();
  for (int64_t i = 0; i < n; ++i) {
    int64_t r0, c0;
    float h, w;
    locate(a.coords + 2 * i, sh, sw, height, width, r0, c0, h, w);
    if (r0 + 1 < r_begin || r0 >= r_end) continue;
    const int64_t row = (a.index ? a.index[i] : i) * C;
    if (a.values_u8)
      for (int64_t c = 0; c < C; ++c) v[c] = lut[a.values_u8[row + c]];
    else
      for (int64_t c = 0; c < C; ++c) v[c] = a.values[row + c];
    for (int64_t e = 0; e < E; ++e) v[C + e] = a.extra[extras[size_t(e)] * n + i];
    for (int corner = 0; corner < 4; ++corner) {
      const int dr = corner >> 1, dc = corner & 1;
      const int64_t r = r0 + dr;
      if (r < r_begin || r >= r_end) continue;
      const float wt = (dr ? h : 1.0f - h) * (dc ? w : 1.0f - w);
      float* o = acc + (r * width + c0 + dc) * K;
      for (int64_t c = 0; c < C + E; ++c) o[c] += v[c] * wt;
      o[C + E] += wt;
    }
  }
}

}  // namespace

void splat_bilinear(const SplatArgs& a, float* out, float* out_extra, float* count) {
  const int64_t n = std::max<int64_t>(a.n, 0), height = a.height, width = a.width, C = a.channels;
  if (height < 2 || width < 2) return;
  const int64_t HW = height * width;
  // the extra channels with a nonzero sample: the others' sums are +0, which out_extra holds
  std::vector<int64_t> extras;
  for (int64_t e = 0; e < a.extra_channels; ++e) {
    const uint32_t* bits = reinterpret_cast<const uint32_t*>(a.extra + e * n);
    uint32_t any = 0;
    for (int64_t i = 0; i < n; ++i) any |= bits[i];
    if (any) extras.push_back(e);
  }
  const int64_t E = int64_t(extras.size()), K = C + E + 1;
  float* acc = t_acc.get(size_t(K * HW));
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>({int64_t(a.num_threads), height / 2, n / 65536 + 1}));
  // Bands of rows with about the same number of samples (the atlas' charts are not spread evenly).
  std::vector<int64_t> bounds{0, height};
  if (threads > 1) {
    std::vector<int64_t> hist(size_t(height), 0);
    const float sh = float(height - 1), sw = float(width - 1);
    for (int64_t i = 0; i < n; ++i) {
      int64_t r0, c0;
      float h, w;
      locate(a.coords + 2 * i, sh, sw, height, width, r0, c0, h, w);
      ++hist[size_t(r0)];
    }
    bounds.assign(1, 0);
    int64_t seen = 0;
    for (int64_t r = 0; r < height && int64_t(bounds.size()) < threads; ++r) {
      seen += hist[size_t(r)];
      if (seen * threads >= n * int64_t(bounds.size()) && r + 1 > bounds.back()) bounds.push_back(r + 1);
    }
    bounds.push_back(height);
  }
  const int64_t bands = int64_t(bounds.size()) - 1;
  float lut[256];
  for (int b = 0; b < 256; ++b) lut[b] = float(b) / 255.0f;
  run_parts(bands, bands, [&](int64_t k, int64_t, int64_t) {
    const int64_t r_begin = bounds[size_t(k)], r_end = bounds[size_t(k) + 1];
    if (C == 3 && E == 1)
      add_band<3, 1>(a, extras, lut, acc, r_begin, r_end);
    else if (C == 3 && E == 2)
      add_band<3, 2>(a, extras, lut, acc, r_begin, r_end);
    else
      add_band<0, 0>(a, extras, lut, acc, r_begin, r_end);
    // write the texels with a nonzero sum (divided by the count where it is > 0), clear them
    for (int64_t t = r_begin * width; t < r_end * width; ++t) {
      float* o = acc + t * K;
      uint32_t any = 0;
      for (int64_t c = 0; c < K; ++c) {
        uint32_t b;
        std::memcpy(&b, o + c, 4);
        any |= b;
      }
      if (!any) continue;
      const float k = o[K - 1];
      const bool divide = a.normalize && k > 0.0f;
      for (int64_t c = 0; c < C; ++c) out[t * C + c] = divide ? o[c] / k : o[c];
      for (int64_t e = 0; e < E; ++e) out_extra[extras[size_t(e)] * HW + t] = divide ? o[C + e] / k : o[C + e];
      if (count) count[t] = k;
      std::fill(o, o + K, 0.0f);
    }
  });
}

}  // namespace render_npu
