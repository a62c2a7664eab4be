#include "rasterize/setup.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "rasterize/simd.h"

// Bit-exactness notes: every float expression below mirrors one numpy float32 operation of
// reference.py; the build uses -ffp-contract=off (no FMA fusion) and never -ffast-math, and
// x86-64 evaluates float in SSE registers (FLT_EVAL_METHOD 0), so each operation rounds once,
// as numpy's does.

namespace render_npu {
namespace raster {

namespace {

// The clipped polygon can grow by at most half its size per plane (each inside run adds two
// vertices; rounding and NaNs can make the inside set non-convex): 3, 4, 6, 9, 13, 19, 28.
constexpr int kMaxPoly = 28;

struct ClipVertex {
  float p[4];     // clip space x, y, z, w
  float beta[3];  // barycentrics with respect to the parent face
};

inline float plane_distance(int plane, const float* v) {
  switch (plane) {
    case 0: return v[2] + v[3];
    case 1: return v[3] - v[2];
    case 2: return kGuardBand * v[3] - v[0];
    case 3: return kGuardBand * v[3] + v[0];
    case 4: return kGuardBand * v[3] - v[1];
    default: return kGuardBand * v[3] + v[1];
  }
}

// Sutherland-Hodgman against the six planes (reference.clip_triangle), only called when some
// vertex is outside some plane. Returns the vertex count (0 when fewer than 3 remain).
int clip_polygon(ClipVertex* poly, int n) {
  ClipVertex tmp[kMaxPoly];
  ClipVertex* src = poly;
  ClipVertex* dst = tmp;
  for (int plane = 0; plane < 6; ++plane) {
    int m = 0;
    for (int i = 0; i < n; ++i) {
      const ClipVertex& a = src[i];
      const ClipVertex& b = src[(i + 1) % n];
      const float da = plane_distance(plane, a.p), db = plane_distance(plane, b.p);
      const bool ina = da >= 0.0f, inb = db >= 0.0f;
      if (ina) dst[m++] = a;
      if (ina != inb) {
        const ClipVertex& vi = ina ? a : b;
        const ClipVertex& vo = ina ? b : a;
        const float di = ina ? da : db, dout = ina ? db : da;
        const float t = di / (di - dout);
        ClipVertex& r = dst[m++];
        for (int k = 0; k < 4; ++k) r.p[k] = vi.p[k] + t * (vo.p[k] - vi.p[k]);
        for (int k = 0; k < 3; ++k) r.beta[k] = vi.beta[k] + t * (vo.beta[k] - vi.beta[k]);
      }
    }
    if (m < 3) return 0;
    std::swap(src, dst);
    n = m;
  }
  if (src != poly) std::copy(src, src + n, poly);
  return n;
}

// np.rint on float32: round half to even. (|v| + 2**23) - 2**23 rounds to an integer in the
// default rounding mode because the ulp there is 1 and 2**23 is even; larger values are
// integers already; NaN and Inf pass through.
inline float rint_f32(float v) {
  const float a = std::fabs(v);
  if (!(a < 8388608.0f)) return v;
  return std::copysign((a + 8388608.0f) - 8388608.0f, v);
}

inline bool finite(float v) { return std::isfinite(v); }

}  // namespace

ScreenMap make_screen_map(int height, int width, bool opengl, bool cull_backfaces) {
  ScreenMap m;
  if (opengl) {
    m.ax = m.bx = float(0.5 * width);
    m.ay = m.by = float(0.5 * height);
  } else {
    m.ax = float(0.5 * (width - 1));
    m.bx = float(0.5 * (width - 1) + 0.5);
    m.ay = float(0.5 * (height - 1));
    m.by = float(0.5 * (height - 1) + 0.5);
  }
  m.width = width;
  m.height = height;
  m.cull_backfaces = cull_backfaces;
  return m;
}

namespace {

// reference.setup_piece for one screen triangle (snapped vertices X, Y; q = z / w), plus its
// tiles; appends it to `out` unless it covers nothing. (Barycentrics come from the parent
// triangle at resolve time, resolve.h, so a piece carries no barycentric coefficients.)
inline void emit_piece(const int32_t* X, const int32_t* Y, const float* q, uint32_t face, const ScreenMap& map,
                       ChunkOut& out) {
  const int64_t signed_area = (int64_t(X[1]) - X[0]) * (int64_t(Y[2]) - Y[0]) - (int64_t(X[2]) - X[0]) * (int64_t(Y[1]) - Y[0]);
  if (signed_area == 0 || (map.cull_backfaces && signed_area < 0)) return;
  // Pieces entirely off screen need nothing else.
  const PixelRect r = piece_rect(X, Y, map.width, map.height);
  if (r.x0 > r.x1 || r.y0 > r.y1) return;

  // Written in place: copying a freshly written stack record would stall on store forwarding.
  out.pieces.emplace_back();
  Piece& pc = out.pieces.back();
  for (int k = 0; k < 3; ++k) {
    pc.X[k] = X[k];
    pc.Y[k] = Y[k];
  }
  const int64_t ext_x = int64_t(std::max(std::max(X[0], X[1]), X[2])) - std::min(std::min(X[0], X[1]), X[2]);
  const int64_t ext_y = int64_t(std::max(std::max(Y[0], Y[1]), Y[2])) - std::min(std::min(Y[0], Y[1]), Y[2]);
  pc.face = face | (signed_area < 0 ? Piece::kNegative : 0u) |
            (ext_x <= kSmallExtent && ext_y <= kSmallExtent ? Piece::kSmall : 0u);
  // The depth plane is computed by finish_planes(); park q there meanwhile.
  for (int k = 0; k < 3; ++k) pc.plane[k] = q[k];

  out.spans.push_back(TileSpan{uint16_t(r.x0 >> kTileShift), uint16_t(r.x1 >> kTileShift),
                               uint16_t(r.y0 >> kTileShift), uint16_t(r.y1 >> kTileShift)});
}

// x + y + z added in increasing order after turning -0 into +0 (reference.setup_piece): the same
// triangle with its vertices listed in another order has the same three products, so its depth
// plane is bitwise the same and coincident triangles tie exactly (lowest id wins).
inline double sorted_sum(double x, double y, double z) {
  x += 0.0, y += 0.0, z += 0.0;
  const double lo_xy = std::min(x, y), hi_xy = std::max(x, y);
  const double lo = std::min(lo_xy, z), hi = std::max(hi_xy, z), mid = std::max(lo_xy, std::min(hi_xy, z));
  return (lo + mid) + hi;
}

// Depth planes of pieces [begin, end): (sum_i coef_i q_i) * (1 / area), coef = a, b, c
// (reference.setup_piece), with q parked in plane[] by emit_piece.
inline void finish_planes(Piece* pieces, size_t begin, size_t end) {
  for (size_t j = begin; j < end; ++j) {
    Piece& pc = pieces[j];
    Edges e;
    piece_edges(pc, e);
    const int64_t area = e.c[0] + e.c[1] + e.c[2];
    const double inv = 1.0 / double(area);
    const double q[3] = {pc.plane[0], pc.plane[1], pc.plane[2]};
    pc.plane[0] = sorted_sum(double(e.a[0]) * q[0], double(e.a[1]) * q[1], double(e.a[2]) * q[2]) * inv;
    pc.plane[1] = sorted_sum(double(e.b[0]) * q[0], double(e.b[1]) * q[1], double(e.b[2]) * q[2]) * inv;
    pc.plane[2] = sorted_sum(double(e.c[0]) * q[0], double(e.c[1]) * q[1], double(e.c[2]) * q[2]) * inv;
  }
}

// Projection and snapping of one clip-space vertex (reference.triangle_pieces); false if the
// result is unusable (non-finite, or beyond kMaxFixed).
inline bool project(const float* p, const ScreenMap& map, float& fx, float& fy, float& q) {
  const float X = p[0] / p[3], Y = p[1] / p[3];
  q = p[2] / p[3];
  fx = rint_f32((X * map.ax + map.bx) * float(kSubpixel));
  fy = rint_f32((Y * map.ay + map.by) * float(kSubpixel));
  return finite(q) && std::fabs(fx) <= kMaxFixed && std::fabs(fy) <= kMaxFixed;
}

enum class FaceKind { kSkip, kClip, kDone };

#if defined(__SSE2__) && !defined(RNPU_NO_SSE_SETUP)  // (the define tests the plain version on x86)
// The unclipped-face path with one SSE register per vertex (x, y, z, w). Lane by lane these
// are the same IEEE float32 operations as the scalar code (a - b == a + (-b) exactly).
inline FaceKind fast_face(const float* const* v, const ScreenMap& map, int32_t* X, int32_t* Y, float* q, float* w) {
  const __m128 p0 = _mm_loadu_ps(v[0]), p1 = _mm_loadu_ps(v[1]), p2 = _mm_loadu_ps(v[2]);
  const __m128i expo = _mm_set1_epi32(0x7f800000);
  const __m128i nonfinite =
      _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(p0), expo), expo),
                                _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(p1), expo), expo)),
                   _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(p2), expo), expo));
  if (_mm_movemask_epi8(nonfinite)) return FaceKind::kSkip;
  const __m128 zero = _mm_setzero_ps(), guard = _mm_set1_ps(kGuardBand);
  const __m128 flip1 = _mm_castsi128_ps(_mm_setr_epi32(0, int32_t(0x80000000), int32_t(0x80000000), 0));
  const __m128 flip2 = _mm_castsi128_ps(_mm_setr_epi32(int32_t(0x80000000), 0, int32_t(0x80000000), 0));
  const __m128 p[3] = {p0, p1, p2};
  __m128 W[3];
  __m128 ok = _mm_castsi128_ps(_mm_set1_epi32(-1));
  for (int k = 0; k < 3; ++k) {
    W[k] = _mm_shuffle_ps(p[k], p[k], _MM_SHUFFLE(3, 3, 3, 3));
    const __m128 gw = _mm_mul_ps(guard, W[k]);
    // (z + w, w - z, gw - x, gw + x) and (gw - y, gw + y, ...)
    const __m128 d1 = _mm_add_ps(_mm_shuffle_ps(W[k], gw, _MM_SHUFFLE(0, 0, 0, 0)),
                                 _mm_xor_ps(_mm_shuffle_ps(p[k], p[k], _MM_SHUFFLE(0, 0, 2, 2)), flip1));
    const __m128 d2 = _mm_add_ps(gw, _mm_xor_ps(_mm_shuffle_ps(p[k], p[k], _MM_SHUFFLE(1, 1, 1, 1)), flip2));
    ok = _mm_and_ps(ok, _mm_and_ps(_mm_cmpge_ps(d1, zero), _mm_cmpge_ps(d2, zero)));
  }
  if (_mm_movemask_ps(ok) != 0xF) return FaceKind::kClip;

  const __m128 scale = _mm_setr_ps(map.ax, map.ay, 0.0f, 0.0f), offset = _mm_setr_ps(map.bx, map.by, 0.0f, 0.0f);
  const __m128 sub = _mm_set1_ps(float(kSubpixel)), magic = _mm_set1_ps(8388608.0f);
  const __m128 sign = _mm_set1_ps(-0.0f);
  const __m128 limit = _mm_setr_ps(kMaxFixed, kMaxFixed, std::numeric_limits<float>::max(), 0.0f);
  int good = 0x7;
  for (int k = 0; k < 3; ++k) {
    const __m128 P = _mm_div_ps(p[k], W[k]);                                  // (X, Y, q, 1)
    const __m128 S = _mm_mul_ps(_mm_add_ps(_mm_mul_ps(P, scale), offset), sub);  // (sx, sy) * 256
    // np.rint: (|s| + 2**23) - 2**23 with the sign put back; |s| >= 2**23 is integral already.
    const __m128 a = _mm_andnot_ps(sign, S);
    const __m128 big = _mm_cmpge_ps(a, magic);
    const __m128 r = _mm_or_ps(_mm_sub_ps(_mm_add_ps(a, magic), magic), _mm_and_ps(S, sign));
    const __m128 R = _mm_or_ps(_mm_and_ps(big, S), _mm_andnot_ps(big, r));
    const __m128 T = _mm_shuffle_ps(R, P, _MM_SHUFFLE(3, 2, 1, 0));  // (fx, fy, q, 1)
    good &= _mm_movemask_ps(_mm_cmple_ps(_mm_andnot_ps(sign, T), limit));
    alignas(16) int32_t xy[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(xy), _mm_cvttps_epi32(T));  // exact: |value| <= 2**29
    alignas(16) float t[4];
    _mm_store_ps(t, T);
    X[k] = xy[0];
    Y[k] = xy[1];
    q[k] = t[2];
    w[k] = v[k][3];
  }
  return good == 0x7 ? FaceKind::kDone : FaceKind::kSkip;
}
#else
inline bool inside_all_planes(const float* v) {
  const float gw = kGuardBand * v[3];
  return (v[2] + v[3] >= 0.0f) & (v[3] - v[2] >= 0.0f) & (gw - v[0] >= 0.0f) & (gw + v[0] >= 0.0f) &
         (gw - v[1] >= 0.0f) & (gw + v[1] >= 0.0f);
}

inline FaceKind fast_face(const float* const* v, const ScreenMap& map, int32_t* X, int32_t* Y, float* q, float* w) {
  bool all_finite = true;
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 4; ++j) all_finite &= finite(v[k][j]);
  if (!all_finite) return FaceKind::kSkip;
  if (!(inside_all_planes(v[0]) & inside_all_planes(v[1]) & inside_all_planes(v[2]))) return FaceKind::kClip;
  bool good = true;
  for (int k = 0; k < 3; ++k) {
    float fx, fy;
    good &= project(v[k], map, fx, fy, q[k]);
    X[k] = good ? int32_t(fx) : 0;
    Y[k] = good ? int32_t(fy) : 0;
    w[k] = v[k][3];
  }
  return good ? FaceKind::kDone : FaceKind::kSkip;
}
#endif

}  // namespace

namespace {

// The clip path of one face (some vertex outside some plane): clip, then the fan (0, i, i + 1).
inline void clipped_face(const float* pos, const int32_t* tri, uint32_t f, const ScreenMap& map, ChunkOut& out) {
  ClipVertex poly[kMaxPoly];
  float fx[kMaxPoly], fy[kMaxPoly], q[kMaxPoly];
  bool ok[kMaxPoly];
  for (int k = 0; k < 3; ++k) {
    const float* v = pos + 4 * int64_t(tri[k]);
    for (int j = 0; j < 4; ++j) poly[k].p[j] = v[j];
    for (int j = 0; j < 3; ++j) poly[k].beta[j] = (j == k) ? 1.0f : 0.0f;
  }
  const int n = clip_polygon(poly, 3);
  for (int i = 0; i < n; ++i) ok[i] = project(poly[i].p, map, fx[i], fy[i], q[i]);
  const size_t first = out.pieces.size();
  for (int i = 1; i + 1 < n; ++i) {
    if (!(ok[0] && ok[i] && ok[i + 1])) continue;
    const int idx[3] = {0, i, i + 1};
    int32_t X[3], Y[3];
    float qq[3];
    for (int k = 0; k < 3; ++k) {
      X[k] = int32_t(fx[idx[k]]);
      Y[k] = int32_t(fy[idx[k]]);
      qq[k] = q[idx[k]];
    }
    emit_piece(X, Y, qq, f, map, out);
  }
  finish_planes(out.pieces.data(), first, out.pieces.size());
}

// Portable version: one face at a time (SSE2 per vertex where available).
bool setup_faces_portable(const float* pos, int64_t num_vertices, const int32_t* faces, int64_t f0, int64_t f1,
                          const ScreenMap& map, ChunkOut& out) {
  for (int64_t f = f0; f < f1; ++f) {
    const int32_t* tri = faces + 3 * f;
    const int32_t i0 = tri[0], i1 = tri[1], i2 = tri[2];
    if ((i0 < 0) | (i0 >= num_vertices) | (i1 < 0) | (i1 >= num_vertices) | (i2 < 0) | (i2 >= num_vertices))
      return false;
    const float* v[3] = {pos + 4 * int64_t(i0), pos + 4 * int64_t(i1), pos + 4 * int64_t(i2)};
    int32_t X[3], Y[3];
    float q[3], w[3];
    const FaceKind kind = fast_face(v, map, X, Y, q, w);
    if (kind == FaceKind::kDone) {
      const size_t first = out.pieces.size();
      emit_piece(X, Y, q, uint32_t(f), map, out);
      finish_planes(out.pieces.data(), first, out.pieces.size());
    } else if (kind == FaceKind::kClip) {
      clipped_face(pos, tri, uint32_t(f), map, out);
    }
  }
  return true;
}

}  // namespace

#if RNPU_HAVE_AVX2
// AVX2 version: 8 faces per step in SIMD lanes (structure of arrays) for the projection, the
// integer tests and the depth planes; the same IEEE operations lane by lane, so the same bits.
// Only called after a run-time CPU check.
#pragma GCC push_options
#pragma GCC target("avx2")
namespace {
namespace avx2 {

// Exact int64 -> float64 (round to nearest even, as cvtsi2sd): hi * 2**32 and lo convert
// exactly, and the one addition rounds once.
inline __m256d i64_to_f64(__m256i v) {
  const __m256d lo = _mm256_sub_pd(
      _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi64x(0xffffffff)),
                                          _mm256_set1_epi64x(0x4330000000000000))),
      _mm256_set1_pd(4503599627370496.0));
  const __m256i hi32 = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7));
  const __m256d hi = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(hi32)), _mm256_set1_pd(4294967296.0));
  return _mm256_add_pd(hi, lo);
}

// Vertex k of 8 faces (idx[3 * j] for face j): rows (x, y, z, w) transposed into x, y, z, w
// vectors (lane = face).
inline void load_vertices(const float* pos, const int32_t* idx, __m256& x, __m256& y, __m256& z, __m256& w) {
  __m256 t[4];
  for (int i = 0; i < 4; ++i)
    t[i] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(pos + 4 * int64_t(idx[3 * i]))),
                                _mm_loadu_ps(pos + 4 * int64_t(idx[3 * (i + 4)])), 1);
  const __m256 u0 = _mm256_unpacklo_ps(t[0], t[1]), u1 = _mm256_unpackhi_ps(t[0], t[1]);
  const __m256 u2 = _mm256_unpacklo_ps(t[2], t[3]), u3 = _mm256_unpackhi_ps(t[2], t[3]);
  x = _mm256_shuffle_ps(u0, u2, _MM_SHUFFLE(1, 0, 1, 0));
  y = _mm256_shuffle_ps(u0, u2, _MM_SHUFFLE(3, 2, 3, 2));
  z = _mm256_shuffle_ps(u1, u3, _MM_SHUFFLE(1, 0, 1, 0));
  w = _mm256_shuffle_ps(u1, u3, _MM_SHUFFLE(3, 2, 3, 2));
}

inline __m256 ge0(__m256 v) { return _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ); }

// Signed 32 x 32 -> 64-bit products a * b of 8 lanes: the even lanes' products and the odd ones'.
inline void mul_wide(__m256i a, __m256i b, __m256i& even, __m256i& odd) {
  even = _mm256_mul_epi32(a, b);
  odd = _mm256_mul_epi32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32));
}

// Depth planes of 4 faces (one half of the 8 lanes): (sum_i coef_i q_i) * (1 / area) with
// coef = a = -256 dy, b = 256 dx, c = dx (128 - Ya) - dy (128 - Xa) (reference.setup_piece).
inline void planes4(const __m128i* dx, const __m128i* dy, const __m128i* Xa, const __m128i* Ya, const __m128* q,
                    double* A, double* B, double* C) {
  const __m256d sub = _mm256_set1_pd(double(kSubpixel));
  const __m256i half = _mm256_set1_epi64x(kHalf);
  __m256d a[3], b[3], c[3];
  __m256i area = _mm256_setzero_si256();
  for (int i = 0; i < 3; ++i) {
    a[i] = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm_sub_epi32(_mm_setzero_si128(), dy[i])), sub);  // exact
    b[i] = _mm256_mul_pd(_mm256_cvtepi32_pd(dx[i]), sub);
    const __m256i ci = _mm256_sub_epi64(
        _mm256_mul_epi32(_mm256_cvtepi32_epi64(dx[i]), _mm256_sub_epi64(half, _mm256_cvtepi32_epi64(Ya[i]))),
        _mm256_mul_epi32(_mm256_cvtepi32_epi64(dy[i]), _mm256_sub_epi64(half, _mm256_cvtepi32_epi64(Xa[i]))));
    area = _mm256_add_epi64(area, ci);
    c[i] = i64_to_f64(ci);
  }
  const __m256d inv = _mm256_div_pd(_mm256_set1_pd(1.0), i64_to_f64(area));
  const __m256d q0 = _mm256_cvtps_pd(q[0]), q1 = _mm256_cvtps_pd(q[1]), q2 = _mm256_cvtps_pd(q[2]);
  const __m256d zero = _mm256_setzero_pd();
  auto plane = [&](const __m256d* k) {  // sorted_sum(k0 q0, k1 q1, k2 q2) * inv, lane by lane
    const __m256d x = _mm256_add_pd(_mm256_mul_pd(k[0], q0), zero);
    const __m256d y = _mm256_add_pd(_mm256_mul_pd(k[1], q1), zero);
    const __m256d z = _mm256_add_pd(_mm256_mul_pd(k[2], q2), zero);
    const __m256d lo_xy = _mm256_min_pd(x, y), hi_xy = _mm256_max_pd(x, y);
    const __m256d lo = _mm256_min_pd(lo_xy, z), hi = _mm256_max_pd(hi_xy, z);
    const __m256d mid = _mm256_max_pd(lo_xy, _mm256_min_pd(hi_xy, z));
    return _mm256_mul_pd(_mm256_add_pd(_mm256_add_pd(lo, mid), hi), inv);
  };
  _mm256_storeu_pd(A, plane(a));
  _mm256_storeu_pd(B, plane(b));
  _mm256_storeu_pd(C, plane(c));
}

// setup_faces below runs these stages on 8 faces at a time (lane = face).

// Stage 1: every vertex index of the 8 faces in [0, last].
inline bool indices_ok(const int32_t* I, __m256i last) {
  __m256i bad = _mm256_setzero_si256();
  for (int i = 0; i < 3; ++i) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(I + 8 * i));
    bad = _mm256_or_si256(bad, _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), v), _mm256_cmpgt_epi32(v, last)));
  }
  return _mm256_testz_si256(bad, bad);
}

// Stage 2: the faces' vertices, which lanes have a non-finite coordinate and which are inside
// every clip plane (reference.clip_triangle's test for "no clipping needed").
struct Lanes {
  __m256 x[3], y[3], z[3], w[3];
  __m256 inside;
  __m256i nonfinite;
  int finite_bits, inside_bits;
};

inline void load_faces(const float* pos, const int32_t* I, Lanes& L) {
  const __m256i expo = _mm256_set1_epi32(0x7f800000);
  const __m256 guard = _mm256_set1_ps(kGuardBand);
  L.nonfinite = _mm256_setzero_si256();
  __m256 inside = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int k = 0; k < 3; ++k) {
    load_vertices(pos, I + k, L.x[k], L.y[k], L.z[k], L.w[k]);
    for (const __m256 v : {L.x[k], L.y[k], L.z[k], L.w[k]})
      L.nonfinite = _mm256_or_si256(L.nonfinite, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), expo), expo));
    const __m256 x = L.x[k], y = L.y[k], z = L.z[k], w = L.w[k], gw = _mm256_mul_ps(guard, w);
    inside = _mm256_and_ps(inside, _mm256_and_ps(_mm256_and_ps(ge0(_mm256_add_ps(z, w)), ge0(_mm256_sub_ps(w, z))),
                                                 _mm256_and_ps(ge0(_mm256_sub_ps(gw, x)), ge0(_mm256_add_ps(gw, x)))));
    inside = _mm256_and_ps(inside, _mm256_and_ps(ge0(_mm256_sub_ps(gw, y)), ge0(_mm256_add_ps(gw, y))));
  }
  L.inside = inside;
  L.finite_bits = ~_mm256_movemask_ps(_mm256_castsi256_ps(L.nonfinite)) & 0xff;
  L.inside_bits = _mm256_movemask_ps(inside);
}

// Stage 3: projection and snapping (reference.triangle_pieces; np.rint as in rint_f32): fixed-point
// X, Y (also stored to SX, SY), q = z / w in two halves, w (stored to SW), and the lanes whose
// snapped values and depths are in range.
struct Snapped {
  __m256i X[3], Y[3];
  __m128 q[2][3];
  __m256 ok;
};

inline void project(const Lanes& L, const ScreenMap& map, Snapped& S, int32_t (*SX)[8], int32_t (*SY)[8],
                    float (*SW)[8]) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 ax = _mm256_set1_ps(map.ax), bx = _mm256_set1_ps(map.bx);
  const __m256 ay = _mm256_set1_ps(map.ay), by = _mm256_set1_ps(map.by);
  const __m256 sub = _mm256_set1_ps(float(kSubpixel)), magic = _mm256_set1_ps(8388608.0f);
  const __m256 limit = _mm256_set1_ps(kMaxFixed), fmax = _mm256_set1_ps(std::numeric_limits<float>::max());
  S.ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int k = 0; k < 3; ++k) {
    const __m256 w = L.w[k];
    const __m256 X = _mm256_div_ps(L.x[k], w), Y = _mm256_div_ps(L.y[k], w), q = _mm256_div_ps(L.z[k], w);
    __m256 f[2] = {_mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(X, ax), bx), sub),
                   _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(Y, ay), by), sub)};
    for (__m256& v : f) {
      const __m256 a = _mm256_andnot_ps(sign, v);
      const __m256 big = _mm256_cmp_ps(a, magic, _CMP_GE_OQ);
      const __m256 r = _mm256_or_ps(_mm256_sub_ps(_mm256_add_ps(a, magic), magic), _mm256_and_ps(v, sign));
      v = _mm256_blendv_ps(r, v, big);
      S.ok = _mm256_and_ps(S.ok, _mm256_cmp_ps(_mm256_andnot_ps(sign, v), limit, _CMP_LE_OQ));
    }
    S.ok = _mm256_and_ps(S.ok, _mm256_cmp_ps(_mm256_andnot_ps(sign, q), fmax, _CMP_LE_OQ));
    S.X[k] = _mm256_cvttps_epi32(f[0]);  // exact where ok: integral, |value| <= 2**29
    S.Y[k] = _mm256_cvttps_epi32(f[1]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(SX[k]), S.X[k]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(SY[k]), S.Y[k]);
    _mm256_store_ps(SW[k], w);
    S.q[0][k] = _mm256_castps256_ps128(q);
    S.q[1][k] = _mm256_extractf128_ps(q, 1);
  }
}

// Stage 4: signed area (64-bit), culling, the pixel rectangle (stored to R: x0, x1, y0, y1) and
// the small flag. ``keep`` (lanes still drawn) is narrowed; returns the sign of the area per lane.
struct Bounds {
  __m256i neg;
  int keep_bits, neg_bits, small_bits;
};

inline Bounds bound(const Snapped& S, __m256i keep, const ScreenMap& map, int32_t (*R)[8]) {
  const __m256i half = _mm256_set1_epi32(kHalf), zero = _mm256_setzero_si256();
  const __m256i wmax = _mm256_set1_epi32(map.width - 1), hmax = _mm256_set1_epi32(map.height - 1);
  const __m256i small_ext = _mm256_set1_epi32(kSmallExtent);
  const __m256i* X = S.X;
  const __m256i* Y = S.Y;
  __m256i e0, o0, e1, o1;
  mul_wide(_mm256_sub_epi32(X[1], X[0]), _mm256_sub_epi32(Y[2], Y[0]), e0, o0);
  mul_wide(_mm256_sub_epi32(X[2], X[0]), _mm256_sub_epi32(Y[1], Y[0]), e1, o1);
  const __m256i ae = _mm256_sub_epi64(e0, e1), ao = _mm256_sub_epi64(o0, o1);
  Bounds b;
  b.neg = _mm256_blend_epi32(_mm256_cmpgt_epi64(zero, ae), _mm256_cmpgt_epi64(zero, ao), 0xAA);
  const __m256i posv = _mm256_blend_epi32(_mm256_cmpgt_epi64(ae, zero), _mm256_cmpgt_epi64(ao, zero), 0xAA);
  keep = _mm256_and_si256(keep, map.cull_backfaces ? posv : _mm256_or_si256(posv, b.neg));
  const __m256i xlo = _mm256_min_epi32(_mm256_min_epi32(X[0], X[1]), X[2]);
  const __m256i xhi = _mm256_max_epi32(_mm256_max_epi32(X[0], X[1]), X[2]);
  const __m256i ylo = _mm256_min_epi32(_mm256_min_epi32(Y[0], Y[1]), Y[2]);
  const __m256i yhi = _mm256_max_epi32(_mm256_max_epi32(Y[0], Y[1]), Y[2]);
  const __m256i rx0 = _mm256_max_epi32(_mm256_sub_epi32(zero, _mm256_srai_epi32(_mm256_sub_epi32(half, xlo), 8)), zero);
  const __m256i rx1 = _mm256_min_epi32(_mm256_srai_epi32(_mm256_sub_epi32(xhi, half), 8), wmax);
  const __m256i ry0 = _mm256_max_epi32(_mm256_sub_epi32(zero, _mm256_srai_epi32(_mm256_sub_epi32(half, ylo), 8)), zero);
  const __m256i ry1 = _mm256_min_epi32(_mm256_srai_epi32(_mm256_sub_epi32(yhi, half), 8), hmax);
  keep = _mm256_andnot_si256(_mm256_or_si256(_mm256_cmpgt_epi32(rx0, rx1), _mm256_cmpgt_epi32(ry0, ry1)), keep);
  b.keep_bits = _mm256_movemask_ps(_mm256_castsi256_ps(keep));
  b.neg_bits = _mm256_movemask_ps(_mm256_castsi256_ps(b.neg));
  b.small_bits = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(
      _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_sub_epi32(xhi, xlo), small_ext),
                      _mm256_cmpgt_epi32(_mm256_sub_epi32(yhi, ylo), small_ext)),
      _mm256_set1_epi32(-1))));
  _mm256_store_si256(reinterpret_cast<__m256i*>(R[0]), rx0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(R[1]), rx1);
  _mm256_store_si256(reinterpret_cast<__m256i*>(R[2]), ry0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(R[3]), ry1);
  return b;
}

// Stage 5: edges with the orientation normalised (s = sign of the area), then the depth planes
// (stored to PL: A, B, C) of the kept lanes, four at a time.
inline void edge_planes(const Snapped& S, __m256i neg, int keep_bits, double (*PL)[8]) {
  const __m256i s = _mm256_or_si256(neg, _mm256_set1_epi32(1));  // -1 or 1
  static constexpr int kA[3] = {1, 2, 0}, kB[3] = {2, 0, 1};
  __m128i dx[2][3], dy[2][3], Xa[2][3], Ya[2][3];
  for (int i = 0; i < 3; ++i) {
    const __m256i dxi = _mm256_sign_epi32(_mm256_sub_epi32(S.X[kB[i]], S.X[kA[i]]), s);
    const __m256i dyi = _mm256_sign_epi32(_mm256_sub_epi32(S.Y[kB[i]], S.Y[kA[i]]), s);
    dx[0][i] = _mm256_castsi256_si128(dxi);
    dx[1][i] = _mm256_extracti128_si256(dxi, 1);
    dy[0][i] = _mm256_castsi256_si128(dyi);
    dy[1][i] = _mm256_extracti128_si256(dyi, 1);
    Xa[0][i] = _mm256_castsi256_si128(S.X[kA[i]]);
    Xa[1][i] = _mm256_extracti128_si256(S.X[kA[i]], 1);
    Ya[0][i] = _mm256_castsi256_si128(S.Y[kA[i]]);
    Ya[1][i] = _mm256_extracti128_si256(S.Y[kA[i]], 1);
  }
  for (int h = 0; h < 2; ++h)
    if ((keep_bits >> (4 * h)) & 0xf) planes4(dx[h], dy[h], Xa[h], Ya[h], S.q[h], PL[0] + 4 * h, PL[1] + 4 * h, PL[2] + 4 * h);
}

bool setup_faces(const float* pos, int64_t num_vertices, const int32_t* faces, int64_t f0, int64_t f1,
                 const ScreenMap& map, ChunkOut& out) {
  alignas(32) int32_t tail[24], SX[3][8], SY[3][8], R[4][8];
  alignas(32) float SW[3][8];
  alignas(32) double PL[3][8];
  // Index check 8 faces at a time: 0 <= idx <= last (indices are int32, so a larger V admits all).
  const __m256i last = _mm256_set1_epi32(int32_t(std::min<int64_t>(num_vertices, INT32_MAX + int64_t(1)) - 1));
  for (int64_t fb = f0; fb < f1; fb += 8) {
    const int nb = int(std::min<int64_t>(8, f1 - fb));
    const int32_t* I = faces + 3 * fb;
    if (nb < 8) {  // last batch: spare lanes repeat the first face
      for (int j = 0; j < 8; ++j)
        for (int k = 0; k < 3; ++k) tail[3 * j + k] = I[3 * (j < nb ? j : 0) + k];
      I = tail;
    }
    if (!indices_ok(I, last)) return false;
    Lanes L;
    load_faces(pos, I, L);
    int clip_bits = L.finite_bits & ~L.inside_bits;
    if (((L.finite_bits & L.inside_bits) | clip_bits) == 0) continue;  // nothing to draw here
    Snapped S;
    project(L, map, S, SX, SY, SW);
    const __m256i keep = _mm256_andnot_si256(L.nonfinite, _mm256_castps_si256(_mm256_and_ps(S.ok, L.inside)));
    const Bounds b = bound(S, keep, map, R);
    if ((b.keep_bits | clip_bits) == 0) continue;
    if (b.keep_bits) edge_planes(S, b.neg, b.keep_bits, PL);

    auto write = [&](int j, Piece& pc, TileSpan& sp) {
      pc.X[0] = SX[0][j], pc.X[1] = SX[1][j], pc.X[2] = SX[2][j];
      pc.Y[0] = SY[0][j], pc.Y[1] = SY[1][j], pc.Y[2] = SY[2][j];
      pc.plane[0] = PL[0][j], pc.plane[1] = PL[1][j], pc.plane[2] = PL[2][j];
      pc.face = uint32_t(fb + j) | (((b.neg_bits >> j) & 1) ? Piece::kNegative : 0u) |
                (((b.small_bits >> j) & 1) ? Piece::kSmall : 0u);
      sp = TileSpan{uint16_t(R[0][j] >> kTileShift), uint16_t(R[1][j] >> kTileShift), uint16_t(R[2][j] >> kTileShift),
                    uint16_t(R[3][j] >> kTileShift)};
    };
    const int lanes = (1 << nb) - 1;
    clip_bits &= lanes;
    if (clip_bits == 0) {  // the common case: append the kept faces in lane order
      int bits = b.keep_bits & lanes;
      const size_t n0 = out.pieces.size(), cnt = size_t(__builtin_popcount(unsigned(bits)));
      out.pieces.resize(n0 + cnt);
      out.spans.resize(n0 + cnt);
      Piece* pc = out.pieces.data() + n0;
      TileSpan* sp = out.spans.data() + n0;
      for (; bits; bits &= bits - 1) write(__builtin_ctz(unsigned(bits)), *pc++, *sp++);
    } else {
      for (int j = 0; j < nb; ++j) {
        if ((b.keep_bits >> j) & 1) {
          out.pieces.emplace_back();
          out.spans.emplace_back();
          write(j, out.pieces.back(), out.spans.back());
        } else if ((clip_bits >> j) & 1) {
          clipped_face(pos, faces + 3 * (fb + j), uint32_t(fb + j), map, out);
        }
      }
    }
  }
  return true;
}

}  // namespace avx2
}  // namespace
#pragma GCC pop_options
#endif

bool setup_faces(const float* pos, int64_t num_vertices, const int32_t* faces, int64_t f0, int64_t f1,
                 const ScreenMap& map, bool use_avx2, ChunkOut& out) {
#if RNPU_HAVE_AVX2
  if (use_avx2) return avx2::setup_faces(pos, num_vertices, faces, f0, f1, map, out);
#endif
  (void)use_avx2;
  return setup_faces_portable(pos, num_vertices, faces, f0, f1, map, out);
}

}  // namespace raster
}  // namespace render_npu
