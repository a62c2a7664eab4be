// See bake.h.
#include "bake/bake.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace render_npu {
namespace {

// Run fn(k, begin, end) on `parts` contiguous ranges of [0, n) (part 0 on the calling thread).
void parallel_ranges(int64_t n, int64_t parts, const std::function<void(int64_t, int64_t, int64_t)>& fn) {
  if (parts <= 1) {
    fn(0, 0, n);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t k = 1; k < parts; ++k) pool.emplace_back(fn, k, n * k / parts, n * (k + 1) / parts);
  fn(0, 0, n / parts);
  for (auto& th : pool) th.join();
}

// interpolate's arithmetic at one pixel: out[q] = (b0 * a0[q] + b1 * a1[q]) + b2 * a2[q] over the
// Q-float rows of `table` named by the triangle `tri`, barycentrics b = r[0..2] (no FMA: the
// bits of csrc/interpolate).
template <int Q>
inline void interpolate_at(const float* r, const int32_t* tri, const float* table, float* out) {
  const float* v0 = table + Q * int64_t(tri[0]);
  const float* v1 = table + Q * int64_t(tri[1]);
  const float* v2 = table + Q * int64_t(tri[2]);
  for (int q = 0; q < Q; ++q) {
    const float s = r[0] * v0[q] + r[1] * v1[q];
    out[q] = s + r[2] * v2[q];
  }
}

// numpy's astype(np.uint8) of a float32 on x86: truncation to int32 (cvttss2si, which gives
// INT_MIN for NaN and values out of range), then the low byte; without C++'s undefined cast.
inline uint8_t trunc_u8(float v) {
  if (!(v >= -2147483648.0f && v < 2147483648.0f)) return 0;  // INT_MIN's low byte
  return static_cast<uint8_t>(static_cast<uint32_t>(static_cast<int32_t>(v)));
}

int64_t parts_for(int64_t n, int num_threads) {
  // below ~1M elements a thread start costs more than it saves
  return std::max<int64_t>(1, std::min<int64_t>(int64_t(num_threads), n / (1 << 20) + 1));
}

}  // namespace

int64_t select_samples(const SelectArgs& a, int64_t n, int64_t* idx, float* coords, float* extra) {
  const int64_t P = a.pixels, parts = parts_for(P, a.num_threads);
  std::vector<int64_t> counts(size_t(parts) + 1, 0);
  parallel_ranges(P, parts, [&](int64_t k, int64_t b, int64_t e) {
    int64_t c = 0;
    for (int64_t p = b; p < e; ++p) c += a.visible[p] != 0;
    counts[size_t(k) + 1] = c;
  });
  for (int64_t k = 0; k < parts; ++k) counts[size_t(k) + 1] += counts[size_t(k)];
  const int64_t found = counts[size_t(parts)];
  if (found != n) return found;
  const bool computed = a.normal || a.vtx_normal;
  std::vector<char> bad(size_t(parts), 0);
  parallel_ranges(P, parts, [&](int64_t k, int64_t b, int64_t e) {
    int64_t j = counts[size_t(k)];
    for (int64_t p = b; p < e; ++p) {
      if (!a.visible[p]) {
        if (a.cos) a.cos[p] = 0.0f;
        continue;
      }
      idx[j] = p;
      int64_t tri = -1;  // the pixel's triangle (with rast)
      const float* r = a.rast ? a.rast + 4 * p : nullptr;
      if (r) {
        const float idf = r[3];
        if (!(idf >= 1.0f && idf <= float(a.num_faces)) || idf != std::floor(idf)) {
          bad[size_t(k)] = 1;
          return;
        }
        tri = int64_t(idf) - 1;
      }
      float c = 0.0f;
      if (computed) {
        float nv[3];
        if (a.normal) {
          const float* m = a.normal + p * a.normal_stride;
          nv[0] = m[0], nv[1] = m[1], nv[2] = m[2];
        } else {  // at this pixel only
          interpolate_at<3>(r, a.normal_faces + 3 * tri, a.vtx_normal, nv);
        }
        const float x = nv[0], y = nv[1], z = nv[2];
        const float norm = std::sqrt(std::fma(z, z, std::fma(y, y, x * x)));
        const float d = norm < 1e-8f ? 1e-8f : norm;  // clamp_min: NaN stays NaN
        c = -(z / d);
        if (c < a.cos_thres) c = 0.0f;
        if (a.cos) a.cos[p] = c;
      } else {
        c = a.cos[p];
      }
      if (a.uv) {
        coords[2 * j] = a.uv[2 * p + 1];
        coords[2 * j + 1] = a.uv[2 * p];
      } else {  // at this pixel only
        float uv[2];
        interpolate_at<2>(r, a.uv_faces + 3 * tri, a.vtx_uv, uv);
        coords[2 * j] = uv[1];  // flipped: (v, u)
        coords[2 * j + 1] = uv[0];
      }
      extra[j] = c;
      if (a.sketch[p]) extra[n + j] = 1.0f;
      ++j;
    }
  });
  for (char x : bad)
    if (x) return -1;
  return found;
}

int64_t view_depth(const ViewDepthArgs& a, float* depth, uint8_t* hit, uint8_t* image) {
  const int64_t P = a.pixels, parts = parts_for(P, a.num_threads);
  std::vector<float> lo(size_t(parts), 0.0f), hi(size_t(parts), 0.0f);
  std::vector<int64_t> hits(size_t(parts), 0);
  std::vector<char> nan(size_t(parts), 0), bad(size_t(parts), 0);
  const float F = float(a.num_faces);
  parallel_ranges(P, parts, [&](int64_t k, int64_t b, int64_t e) {
    float mn = 0.0f, mx = 0.0f;
    int64_t h = 0;
    for (int64_t p = b; p < e; ++p) {
      const float* r = a.rast + 4 * p;
      const float idf = r[3];
      if (!(idf > 0.0f)) {
        hit[p] = 0;
        depth[p] = 0.0f;
        continue;
      }
      if (!(idf >= 1.0f && idf <= F) || idf != std::floor(idf)) {
        bad[size_t(k)] = 1;
        return;
      }
      float d;
      interpolate_at<1>(r, a.faces + (int64_t(idf) - 1) * 3, a.z, &d);
      hit[p] = 1;
      depth[p] = d;
      if (std::isnan(d)) nan[size_t(k)] = 1;
      if (h == 0 || d < mn) mn = d;
      if (h == 0 || d > mx) mx = d;
      ++h;
    }
    lo[size_t(k)] = mn, hi[size_t(k)] = mx, hits[size_t(k)] = h;
  });
  float dmin = 0.0f, dmax = 0.0f;
  int64_t total = 0;
  for (int64_t k = 0; k < parts; ++k) {
    if (bad[size_t(k)]) return -2;
    if (nan[size_t(k)]) return -1;
    if (!hits[size_t(k)]) continue;
    if (total == 0 || lo[size_t(k)] < dmin) dmin = lo[size_t(k)];
    if (total == 0 || hi[size_t(k)] > dmax) dmax = hi[size_t(k)];
    total += hits[size_t(k)];
  }
  if (total == 0) return 0;
  const float range = dmax - dmin;
  parallel_ranges(P, parts, [&](int64_t, int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float m = hit[p] ? 1.0f : 0.0f;
      const float v = ((depth[p] - dmin) / range) * m * 255.0f;
      image[p] = trunc_u8(v);
    }
  });
  return total;
}

int64_t merge_views(const MergeArgs& a, float* out, float* trust) {
  const int64_t T = a.texels, C = a.channels, parts = parts_for(T * (C + 1), a.num_threads);
  std::vector<int64_t> view_sum(static_cast<size_t>(parts)), painted_sum(static_cast<size_t>(parts));
  parallel_ranges(T, parts, [&](int64_t, int64_t b, int64_t e) {
    std::fill(out + b * C, out + e * C, 0.0f);
    std::fill(trust + b, trust + e, 0.0f);
  });
  int64_t used = 0;
  for (int64_t v = 0; v < a.views; ++v) {
    const float* w = a.weights[v];
    const float* tex = a.textures[v];
    parallel_ranges(T, parts, [&](int64_t k, int64_t b, int64_t e) {
      int64_t s = 0, p = 0;
      for (int64_t t = b; t < e; ++t) {
        const bool on = w[t] > 0.0f;
        s += on;
        p += on && trust[t] > 0.0f;
      }
      view_sum[size_t(k)] = s;
      painted_sum[size_t(k)] = p;
    });
    int64_t s = 0, p = 0;
    for (int64_t k = 0; k < parts; ++k) s += view_sum[size_t(k)], p += painted_sum[size_t(k)];
    // torch: int64 / int64 -> float32 true division, compared with 0.99 as float32
    if (float(p) / float(s) > 0.99f) continue;
    ++used;
    parallel_ranges(T, parts, [&](int64_t, int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const float wt = w[t];
        const float* x = tex + t * C;
        if (wt == 0.0f) {
          // out += x * 0 and trust += 0 change nothing (out and trust are never -0.0) unless x
          // is not finite (then NaN, as torch gives)
          bool finite = true;
          for (int64_t c = 0; c < C; ++c) finite &= std::isfinite(x[c]);
          if (finite) continue;
        }
        float* o = out + t * C;
        for (int64_t c = 0; c < C; ++c) {
          const float prod = x[c] * wt;
          o[c] += prod;
        }
        trust[t] += wt;
      }
    });
  }
  parallel_ranges(T, parts, [&](int64_t, int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float tr = trust[t];
      const float d = tr < 1e-8f ? 1e-8f : tr;  // torch.clamp(min=1e-8): NaN stays NaN
      float* o = out + t * C;
      for (int64_t c = 0; c < C; ++c) o[c] /= d;
    }
  });
  return used;
}

void floats_to_u8(const float* x, int64_t n, float offset, float scale, uint8_t* out, int num_threads) {
  parallel_ranges(n, parts_for(n, num_threads), [&](int64_t, int64_t b, int64_t e) {
    int64_t i = b;
#if defined(__SSE2__)
    // 16 at a time: the same float32 operations, cvttps2dq's truncation (INT_MIN for NaN and out
    // of range, as trunc_u8), then the low byte of each int32 (masked, so both packs are exact)
    const __m128 off = _mm_set1_ps(offset), sc = _mm_set1_ps(scale), k255 = _mm_set1_ps(255.0f);
    const __m128i low = _mm_set1_epi32(0xff);
    for (; i + 16 <= e; i += 16) {
      __m128i q[4];
      for (int k = 0; k < 4; ++k) {
        const __m128 v = _mm_mul_ps(_mm_mul_ps(_mm_add_ps(_mm_loadu_ps(x + i + 4 * k), off), sc), k255);
        q[k] = _mm_and_si128(_mm_cvttps_epi32(v), low);
      }
      const __m128i w = _mm_packus_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), w);
    }
#endif
    for (; i < e; ++i) out[i] = trunc_u8(((x[i] + offset) * scale) * 255.0f);
  });
}

void inpaint_bytes(const float* x, const uint8_t* known, const uint8_t* region, const uint8_t* fill_value, int64_t texels,
                   int64_t channels, uint8_t* out, int num_threads) {
  const int64_t C = channels;
  parallel_ranges(texels, parts_for(texels * C, num_threads), [&](int64_t, int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* v = x + t * C;
      uint8_t* o = out + t * C;
      if (known[t]) {
        for (int64_t c = 0; c < C; ++c) o[c] = trunc_u8(v[c] * 255.0f);
      } else if (!region || region[t]) {
        for (int64_t c = 0; c < C; ++c) {
          const float y = std::min(std::max(v[c], 0.0f), 1.0f) * 255.0f + 0.5f;  // (NaN stays NaN, as torch's clamp)
          o[c] = trunc_u8(y);
        }
      } else {
        for (int64_t c = 0; c < C; ++c) o[c] = fill_value[c];
      }
    }
  });
}

}  // namespace render_npu
