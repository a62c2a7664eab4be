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

struct TexArgs {
  const std::vector<TexLevel>* levels;
  int64_t tex_batch, C, H, W;
  const float *uv, *uv_da, *bias;
  TexBoundary boundary;
  float* out;
};

// Pixels [begin, end) with the channel count (NC > 0) and the filter fixed at compile time; each
// pixel accumulates in a local array (registers for small C) and is stored once.
template <int NC, TexFilter kFilter>
void texture_range(const TexArgs& a, int64_t begin, int64_t end) {
  const std::vector<TexLevel>& levels = *a.levels;
  const int64_t C = NC > 0 ? NC : a.C;
  const int64_t top = static_cast<int64_t>(levels.size()) - 1;
  const float w0 = static_cast<float>(levels[0].w), h0 = static_cast<float>(levels[0].h);
  const TexBoundary boundary = a.boundary;
  constexpr int kAcc = NC > 0 ? NC : 64;
  float local[kAcc];
  for (int64_t i = begin; i < end; ++i) {
    const int64_t batch = a.tex_batch == 1 ? 0 : i / (a.H * a.W);
    const float s = a.uv[2 * i], t = a.uv[2 * i + 1];
    float* o = a.out + i * C;
    float* acc = (NC > 0 || C <= kAcc) ? local : o;  // many channels: accumulate in place
    for (int64_t c = 0; c < C; ++c) acc[c] = 0.f;
    if (kFilter == TexFilter::kNearest) {
      const TexLevel& lv = levels[0];
      bool vx = true, vy = true;
      const int64_t xi =
          wrap_index(static_cast<int64_t>(std::floor(pin(s * static_cast<float>(lv.w)))), lv.w, boundary, &vx);
      const int64_t yi =
          wrap_index(static_cast<int64_t>(std::floor(pin(t * static_cast<float>(lv.h)))), lv.h, boundary, &vy);
      if (vx && vy) {
        const float* p = lv.data + ((batch * lv.h + yi) * lv.w + xi) * C;
        for (int64_t c = 0; c < C; ++c) acc[c] = p[c];
      }
    } else if (kFilter == TexFilter::kLinear || top == 0) {
      bilinear_n<NC>(levels[0], batch, C, s, t, boundary, 1.f, acc);
    } else {
      float lod;
      if (a.uv_da) {
        const float* d = a.uv_da + 4 * i;
        const float ax = d[0] * w0, bx = d[2] * h0, ay = d[1] * w0, by = d[3] * h0;
        const float g = std::max(std::max(ax * ax + bx * bx, ay * ay + by * by), 1e-30f);
        lod = 0.5f * std::log2(g) + (a.bias ? a.bias[i] : 0.f);
      } else {
        lod = a.bias[i];
      }
      if (!(lod > 0.f)) lod = 0.f;  // NaN too
      lod = std::min(lod, static_cast<float>(top));
      if (kFilter == TexFilter::kMipNearest) {
        bilinear_n<NC>(levels[static_cast<int64_t>(std::floor(lod + 0.5f))], batch, C, s, t, boundary, 1.f, acc);
      } else {
        const int64_t l0 = std::min(static_cast<int64_t>(std::floor(lod)), top - 1);
        const float frac = lod - static_cast<float>(l0);
        // a level of weight 0 (lod clamped to 0 when magnifying, to the top, or an integer lod)
        // adds exactly 0 for finite texels: skip its four taps
        if (frac != 1.f) bilinear_n<NC>(levels[l0], batch, C, s, t, boundary, 1.f - frac, acc);
        if (frac != 0.f) bilinear_n<NC>(levels[l0 + 1], batch, C, s, t, boundary, frac, acc);
      }
    }
    if (acc != o)
      for (int64_t c = 0; c < C; ++c) o[c] = acc[c];
  }
}

template <int NC>
void texture_range_c(TexFilter filter, const TexArgs& a, int64_t begin, int64_t end) {
  switch (filter) {
    case TexFilter::kNearest: return texture_range<NC, TexFilter::kNearest>(a, begin, end);
    case TexFilter::kLinear: return texture_range<NC, TexFilter::kLinear>(a, begin, end);
    case TexFilter::kMipNearest: return texture_range<NC, TexFilter::kMipNearest>(a, begin, end);
    default: return texture_range<NC, TexFilter::kMipLinear>(a, begin, end);
  }
}

}  // namespace

void texture_forward_cpu(const std::vector<TexLevel>& levels, int64_t tex_batch, int64_t C, const float* uv,
                         const float* uv_da, const float* bias, int64_t B, int64_t H, int64_t W, TexFilter filter,
                         TexBoundary boundary, int num_threads, float* out) {
  const int64_t n = B * H * W;
  const TexArgs args{&levels, tex_batch, C, H, W, uv, uv_da, bias, boundary, out};
  auto work = [&](int64_t begin, int64_t end) {
    switch (C) {
      case 1: return texture_range_c<1>(filter, args, begin, end);
      case 2: return texture_range_c<2>(filter, args, begin, end);
      case 3: return texture_range_c<3>(filter, args, begin, end);
      case 4: return texture_range_c<4>(filter, args, begin, end);
      default: return texture_range_c<0>(filter, args, begin, end);
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
