#include "texture/texture_cpu.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace render_npu {
namespace {

// Texel coordinates far outside any texture (and NaN) are pinned before the float -> int cast,
// which is undefined for values an int64 cannot hold; NaN goes to the low end.
inline float pin(float v) {
  if (!(v > -1e9f)) return -1e9f;
  return v < 1e9f ? v : 1e9f;
}

inline int64_t wrap_index(int64_t i, int64_t n, TexBoundary b, bool* valid) {
  if (i >= 0 && i < n) return i;  // almost every tap: skip the integer division
  if (b == TexBoundary::kWrap) {
    int64_t r = i % n;
    return r < 0 ? r + n : r;
  }
  if (b == TexBoundary::kZero && (i < 0 || i >= n)) *valid = false;
  return std::min(std::max(i, int64_t{0}), n - 1);
}

// acc[c] += weight * bilinear(level, s, t); NC > 0 fixes the channel count at compile time.
template <int NC>
inline void bilinear_n(const TexLevel& lv, int64_t batch, int64_t C_rt, float s, float t, TexBoundary b,
                       float weight, float* acc) {
  const int64_t C = NC > 0 ? NC : C_rt;
  const float x = pin(s * static_cast<float>(lv.w) - 0.5f), y = pin(t * static_cast<float>(lv.h) - 0.5f);
  const float x0f = std::floor(x), y0f = std::floor(y);
  const float fx = x - x0f, fy = y - y0f;
  const int64_t x0 = static_cast<int64_t>(x0f), y0 = static_cast<int64_t>(y0f);
  int64_t xa = x0, xb = x0 + 1, ya = y0, yb = y0 + 1;
  bool vx0 = true, vx1 = true, vy0 = true, vy1 = true;
  if (!(x0 >= 0 && x0 + 1 < lv.w && y0 >= 0 && y0 + 1 < lv.h)) {  // a footprint over an edge
    xa = wrap_index(x0, lv.w, b, &vx0), xb = wrap_index(x0 + 1, lv.w, b, &vx1);
    ya = wrap_index(y0, lv.h, b, &vy0), yb = wrap_index(y0 + 1, lv.h, b, &vy1);
  }
  const float* base = lv.data + batch * lv.h * lv.w * C;
  const float w00 = (vy0 && vx0) ? (1 - fy) * (1 - fx) : 0.f, w01 = (vy0 && vx1) ? (1 - fy) * fx : 0.f;
  const float w10 = (vy1 && vx0) ? fy * (1 - fx) : 0.f, w11 = (vy1 && vx1) ? fy * fx : 0.f;
  const float* p00 = base + (ya * lv.w + xa) * C;
  const float* p01 = base + (ya * lv.w + xb) * C;
  const float* p10 = base + (yb * lv.w + xa) * C;
  const float* p11 = base + (yb * lv.w + xb) * C;
  for (int64_t c = 0; c < C; ++c)
    acc[c] += weight * (p00[c] * w00 + p01[c] * w01 + p10[c] * w10 + p11[c] * w11);
}

inline void bilinear(const TexLevel& lv, int64_t batch, int64_t C, float s, float t, TexBoundary b, float weight,
                     float* acc) {
  switch (C) {
    case 1: return bilinear_n<1>(lv, batch, C, s, t, b, weight, acc);
    case 3: return bilinear_n<3>(lv, batch, C, s, t, b, weight, acc);
    case 4: return bilinear_n<4>(lv, batch, C, s, t, b, weight, acc);
    default: return bilinear_n<0>(lv, batch, C, s, t, b, weight, acc);
  }
}

}  // namespace

void texture_forward_cpu(const std::vector<TexLevel>& levels, int64_t tex_batch, int64_t C, const float* uv,
                         const float* uv_da, const float* bias, int64_t B, int64_t H, int64_t W, TexFilter filter,
                         TexBoundary boundary, int num_threads, float* out) {
  const int64_t n = B * H * W;
  const int64_t top = static_cast<int64_t>(levels.size()) - 1;
  const float w0 = static_cast<float>(levels[0].w), h0 = static_cast<float>(levels[0].h);
  auto work = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t batch = tex_batch == 1 ? 0 : i / (H * W);
      const float s = uv[2 * i], t = uv[2 * i + 1];
      float* o = out + i * C;
      for (int64_t c = 0; c < C; ++c) o[c] = 0.f;
      if (filter == TexFilter::kNearest) {
        const TexLevel& lv = levels[0];
        bool vx = true, vy = true;
        const int64_t xi = wrap_index(static_cast<int64_t>(std::floor(pin(s * static_cast<float>(lv.w)))), lv.w,
                                      boundary, &vx);
        const int64_t yi = wrap_index(static_cast<int64_t>(std::floor(pin(t * static_cast<float>(lv.h)))), lv.h,
                                      boundary, &vy);
        if (vx && vy) {
          const float* p = lv.data + ((batch * lv.h + yi) * lv.w + xi) * C;
          for (int64_t c = 0; c < C; ++c) o[c] = p[c];
        }
        continue;
      }
      if (filter == TexFilter::kLinear || top == 0) {
        bilinear(levels[0], batch, C, s, t, boundary, 1.f, o);
        if (filter == TexFilter::kLinear || top == 0) continue;
      }
      float lod;
      if (uv_da) {
        const float* d = uv_da + 4 * i;
        const float ax = d[0] * w0, bx = d[2] * h0, ay = d[1] * w0, by = d[3] * h0;
        const float g = std::max(std::max(ax * ax + bx * bx, ay * ay + by * by), 1e-30f);
        lod = 0.5f * std::log2(g) + (bias ? bias[i] : 0.f);
      } else {
        lod = bias[i];
      }
      if (!(lod > 0.f)) lod = 0.f;  // NaN too
      lod = std::min(lod, static_cast<float>(top));
      if (filter == TexFilter::kMipNearest) {
        bilinear(levels[static_cast<int64_t>(std::floor(lod + 0.5f))], batch, C, s, t, boundary, 1.f, o);
        continue;
      }
      const int64_t l0 = std::min(static_cast<int64_t>(std::floor(lod)), top - 1);
      const float frac = lod - static_cast<float>(l0);
      bilinear(levels[l0], batch, C, s, t, boundary, 1.f - frac, o);
      bilinear(levels[l0 + 1], batch, C, s, t, boundary, frac, o);
    }
  };
  const int threads = std::max(1, std::min<int>(num_threads, static_cast<int>((n + 4095) / 4096)));
  if (threads == 1) {
    work(0, n);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t chunk = (n + threads - 1) / threads;
  for (int k = 0; k < threads; ++k) {
    const int64_t b = k * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back(work, b, e);
  }
  for (auto& th : pool) th.join();
}

}  // namespace render_npu
