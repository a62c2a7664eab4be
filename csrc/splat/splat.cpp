// See splat.h. float32 arithmetic, no FMA contraction (CMakeLists.txt: -ffp-contract=off), so the
// sums equal a sequential scatter-add of value * weight in the documented order.
#include "splat/splat.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <type_traits>
#include <new>
#include <vector>
#if defined(__linux__)
#include <sys/mman.h>
#endif

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
// read), so a 2048^2 bake neither allocates nor zero-fills (page faults) per call. In huge pages
// where the kernel allows: the additions scatter over ~100 MB, and 4 KiB pages miss the TLB.
struct Accumulator {
  float* data = nullptr;
  size_t size = 0;
  ~Accumulator() { std::free(data); }
  float* get(size_t n) {
    if (n <= size) return data;
    std::free(data);
    constexpr size_t kAlign = size_t(2) << 20;
    const size_t bytes = (n * sizeof(float) + kAlign - 1) / kAlign * kAlign;
    data = static_cast<float*>(std::aligned_alloc(kAlign, bytes));
    if (!data) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(data, bytes, MADV_HUGEPAGE);  // a hint: failure only costs speed
#endif
    std::memset(data, 0, bytes);
    size = bytes / sizeof(float);
    return data;
  }
};
thread_local Accumulator t_acc, t_rec, t_texel;  // t_rec, t_texel: per-sample scratch (contents garbage)

}  // namespace

void splat_bilinear(const SplatArgs& a, float* out, float* out_extra, float* count) {
  const int64_t n = std::max<int64_t>(a.n, 0), height = a.height, width = a.width, C = a.channels,
                E = a.extra_channels;
  if (height < 2 || width < 2) return;
  const int64_t HW = height * width;
  // Interleaved accumulator per texel: C values, E extras, count -- one cache line per addition
  // instead of one per output plane.
  const int64_t K = C + E + 1, R = 2 + C + E;
  float* acc = t_acc.get(size_t(K * HW));
  const float sh = float(height - 1), sw = float(width - 1);
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>({int64_t(a.num_threads), height, n / 65536 + 1}));
  // Pass 0: each sample's top-left texel, fractions (float32, as the rule computes them) and
  // values (gathered, uint8 read as float(b) / 255.0f), packed: one stream for the corner passes.
  // (reused per thread too: fresh 2M-sample arrays cost more in page faults than pass 0 itself)
  int64_t* texel = reinterpret_cast<int64_t*>(t_texel.get(size_t(2 * n)));
  float* rec = t_rec.get(size_t(n * R));
  float lut[256];
  for (int b = 0; b < 256; ++b) lut[b] = float(b) / 255.0f;
  run_parts(n, threads, [&](int64_t, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float y = a.coords[2 * i] * sh, x = a.coords[2 * i + 1] * sw;
      // floor then clamp, in int64 (a NaN coordinate lands on texel 0, like a float->long cast)
      const float fy = std::floor(y), fx = std::floor(x);
      int64_t r0 = std::isnan(fy) ? 0 : int64_t(std::max(std::min(fy, 9.0e18f), -9.0e18f));
      int64_t c0 = std::isnan(fx) ? 0 : int64_t(std::max(std::min(fx, 9.0e18f), -9.0e18f));
      r0 = std::min(std::max(r0, int64_t(0)), height - 2);
      c0 = std::min(std::max(c0, int64_t(0)), width - 2);
      texel[i] = r0 * width + c0;
      float* r = rec + i * R;
      r[0] = y - float(r0);
      r[1] = x - float(c0);
      const int64_t row = (a.index ? a.index[i] : i) * C;
      if (a.values_u8)
        for (int64_t c = 0; c < C; ++c) r[2 + c] = lut[a.values_u8[row + c]];
      else
        for (int64_t c = 0; c < C; ++c) r[2 + c] = a.values[row + c];
      for (int64_t e2 = 0; e2 < E; ++e2) r[2 + C + e2] = a.extra[e2 * n + i];
    }
  });
  // One corner's pass over the samples; CC / EE > 0: the channel counts fixed at compile time
  // (the bake's 3 + 2), 0: read from a.
  // list: the samples to visit, in sample order (null: all of them).
  auto pass = [&](auto cc, auto ee, int corner, int64_t t_begin, int64_t t_end, const int32_t* list, int64_t m) {
    constexpr int64_t CC = decltype(cc)::value, EE = decltype(ee)::value;
    const int64_t Cn = CC ? CC : C, En = EE ? EE : E, Kn = Cn + En + 1, Rn = 2 + Cn + En;
    const int dr = corner >> 1, dc = corner & 1;
    const int64_t offset = dr * width + dc;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t i = list ? int64_t(list[j]) : j;
      const float* rp = rec + i * Rn;
      const int64_t t = texel[i] + offset;
      if (t < t_begin || t >= t_end) continue;
      const float h = rp[0], w = rp[1];
      const float wr = dr ? h : 1.0f - h, wc = dc ? w : 1.0f - w;
      const float wt = wr * wc;
      float* o = acc + t * Kn;
      for (int64_t c = 0; c < Cn + En; ++c) {
        const float p = rp[2 + c] * wt;
        o[c] += p;
      }
      o[Cn + En] += wt;
    }
  };
  using C3 = std::integral_constant<int64_t, 3>;
  using E2 = std::integral_constant<int64_t, 2>;
  using Any = std::integral_constant<int64_t, 0>;
  const bool baked = C == 3 && E == 2;
  // Each thread owns texels [t_begin, t_end) (whole rows) and skips additions outside them.
  run_parts(height, threads, [&](int64_t, int64_t r_begin, int64_t r_end) {
    const int64_t t_begin = r_begin * width, t_end = r_end * width;
    // with several bands, each first lists the samples with a corner in it (sample order kept),
    // so the four corner passes do not each read every sample
    std::vector<int32_t> mine;
    const bool listed = threads > 1 && n < (int64_t(1) << 31);
    if (listed) {
      mine.reserve(size_t(n / threads + n / 16));
      for (int64_t i = 0; i < n; ++i) {
        const int64_t t = texel[i];
        if (t + width + 1 >= t_begin && t < t_end) mine.push_back(int32_t(i));
      }
    }
    const int32_t* list = listed ? mine.data() : nullptr;
    const int64_t m = listed ? int64_t(mine.size()) : n;
    for (int corner = 0; corner < 4; ++corner) {
      if (baked) pass(C3(), E2(), corner, t_begin, t_end, list, m);
      else pass(Any(), Any(), corner, t_begin, t_end, list, m);
    }
    // write the outputs (divided by the count where it is > 0) and clear the accumulator
    for (int64_t t = t_begin; t < t_end; ++t) {
      float* o = acc + t * K;
      const float k = o[C + E];
      const bool divide = a.normalize && k > 0.0f;
      for (int64_t c = 0; c < C; ++c) out[t * C + c] = divide ? o[c] / k : o[c];
      for (int64_t e = 0; e < E; ++e) out_extra[e * HW + t] = divide ? o[C + e] / k : o[C + e];
      count[t] = k;
      std::fill(o, o + K, 0.0f);
    }
  });
}

}  // namespace render_npu
