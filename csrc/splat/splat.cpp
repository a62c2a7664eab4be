// See splat.h. float32 arithmetic, no FMA contraction (CMakeLists.txt: -ffp-contract=off), so the
// sums equal a sequential scatter-add of value * weight in the documented order.
#include "splat/splat.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <type_traits>
#include <vector>

namespace render_npu {

void splat_bilinear(const SplatArgs& a, float* out, float* out_extra, float* count) {
  const int64_t n = a.n, height = a.height, width = a.width, C = a.channels, E = a.extra_channels;
  if (n <= 0 || height < 2 || width < 2) return;
  const int64_t HW = height * width;
  const float sh = float(height - 1), sw = float(width - 1);
  // Pass 0: each sample's top-left texel and fractions, once (float32, as the rule computes them).
  std::vector<int64_t> texel(static_cast<size_t>(n), 0);
  std::vector<float> fh(static_cast<size_t>(n)), fw(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float y = a.coords[2 * i] * sh, x = a.coords[2 * i + 1] * sw;
    // floor then clamp, in int64 (a NaN coordinate lands on texel 0, like a float->long cast)
    const float fy = std::floor(y), fx = std::floor(x);
    int64_t r0 = std::isnan(fy) ? 0 : int64_t(std::max(std::min(fy, 9.0e18f), -9.0e18f));
    int64_t c0 = std::isnan(fx) ? 0 : int64_t(std::max(std::min(fx, 9.0e18f), -9.0e18f));
    r0 = std::min(std::max(r0, int64_t(0)), height - 2);
    c0 = std::min(std::max(c0, int64_t(0)), width - 2);
    texel[size_t(i)] = r0 * width + c0;
    fh[size_t(i)] = y - float(r0);
    fw[size_t(i)] = x - float(c0);
  }
  // uint8 values: float(b) / 255.0f looked up (the same floats, without a division per channel)
  float lut[256];
  for (int b = 0; b < 256; ++b) lut[b] = float(b) / 255.0f;
  // One corner's pass over the samples; CC / EE > 0: the channel counts fixed at compile time
  // (the bake's 3 + 2), 0: read from a.
  auto pass = [&](auto cc, auto ee, bool u8, int corner, int64_t t_begin, int64_t t_end) {
    constexpr int64_t CC = decltype(cc)::value, EE = decltype(ee)::value;
    const int64_t Cn = CC ? CC : C, En = EE ? EE : E;
    const int dr = corner >> 1, dc = corner & 1;
    const int64_t offset = dr * width + dc;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = texel[size_t(i)] + offset;
      if (t < t_begin || t >= t_end) continue;
      const float h = fh[size_t(i)], w = fw[size_t(i)];
      const float wr = dr ? h : 1.0f - h, wc = dc ? w : 1.0f - w;
      const float wt = wr * wc;
      const int64_t row = (a.index ? a.index[i] : i) * Cn;
      float* o = out + t * Cn;
      if (u8) {
        const uint8_t* v = a.values_u8 + row;
        for (int64_t c = 0; c < Cn; ++c) {
          const float p = lut[v[c]] * wt;
          o[c] += p;
        }
      } else {
        const float* v = a.values + row;
        for (int64_t c = 0; c < Cn; ++c) {
          const float p = v[c] * wt;
          o[c] += p;
        }
      }
      for (int64_t e = 0; e < En; ++e) {
        const float p = a.extra[e * n + i] * wt;
        out_extra[e * HW + t] += p;
      }
      count[t] += wt;
    }
  };
  using C3 = std::integral_constant<int64_t, 3>;
  using E2 = std::integral_constant<int64_t, 2>;
  using Any = std::integral_constant<int64_t, 0>;
  const bool u8 = a.values_u8 != nullptr, baked = C == 3 && E == 2;
  // Each thread owns texels [t_begin, t_end) (whole rows) and skips additions outside them.
  auto run = [&](int64_t t_begin, int64_t t_end) {
    for (int corner = 0; corner < 4; ++corner) {
      if (baked && u8) pass(C3(), E2(), true, corner, t_begin, t_end);
      else if (baked) pass(C3(), E2(), false, corner, t_begin, t_end);
      else pass(Any(), Any(), u8, corner, t_begin, t_end);
    }
    if (!a.normalize) return;
    for (int64_t t = t_begin; t < t_end; ++t) {
      const float k = count[t];
      if (!(k > 0.0f)) continue;
      for (int64_t c = 0; c < C; ++c) out[t * C + c] /= k;
      for (int64_t e = 0; e < E; ++e) out_extra[e * HW + t] /= k;
    }
  };
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>({int64_t(a.num_threads), height, n / 65536 + 1}));
  if (threads == 1) {
    run(0, HW);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t k = 1; k < threads; ++k)
    pool.emplace_back(run, height * k / threads * width, height * (k + 1) / threads * width);
  run(0, height / threads * width);
  for (auto& th : pool) th.join();
}

}  // namespace render_npu
