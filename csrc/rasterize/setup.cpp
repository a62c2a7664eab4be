#include "rasterize/setup.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
// tiles; appends it to `out` unless it covers nothing. Unclipped faces pass `w` (their vertices'
// clip-space w; beta is the identity), clipped pieces pass their three polygon vertices `cv`.
inline void emit_piece(const int32_t* X, const int32_t* Y, const float* q, const float* w,
                       const ClipVertex* const* cv, uint32_t face, const ScreenMap& map, ChunkOut& out) {
  const int64_t signed_area = (int64_t(X[1]) - X[0]) * (int64_t(Y[2]) - Y[0]) - (int64_t(X[2]) - X[0]) * (int64_t(Y[1]) - Y[0]);
  if (signed_area == 0 || (map.cull_backfaces && signed_area < 0)) return;
  // Pieces entirely off screen need nothing else.
  const PixelRect r = piece_rect(X, Y, map.width, map.height);
  if (r.x0 > r.x1 || r.y0 > r.y1) return;

  // Written in place (capacity is reserved): a copy of a freshly written stack record stalls on
  // store forwarding.
  out.pieces.emplace_back();
  Piece& pc = out.pieces.back();
  for (int k = 0; k < 3; ++k) {
    pc.X[k] = X[k];
    pc.Y[k] = Y[k];
  }
  const int64_t ext_x = int64_t(std::max(std::max(X[0], X[1]), X[2])) - std::min(std::min(X[0], X[1]), X[2]);
  const int64_t ext_y = int64_t(std::max(std::max(Y[0], Y[1]), Y[2])) - std::min(std::min(Y[0], Y[1]), Y[2]);
  pc.face = face | (signed_area < 0 ? Piece::kNegative : 0u) | (w ? 0u : Piece::kClipped) |
            (ext_x <= kSmallExtent && ext_y <= kSmallExtent ? Piece::kSmall : 0u);
  // The depth plane is computed by finish_planes(); park q there meanwhile.
  for (int k = 0; k < 3; ++k) pc.plane[k] = q[k];

  if (w) {
    // beta is the identity: c_ik = 1/w_i on the diagonal, +0 elsewhere (w_i > 0 here since
    // z + w >= 0 and w - z >= 0 and x / w is finite); the resolve computes 1.0 / double(w_i).
    std::memcpy(pc.aux, w, 3 * sizeof(float));
  } else {
    pc.aux[0] = uint32_t(out.coef.size());
    pc.aux[1] = pc.aux[2] = 0;
    for (int k = 0; k < 3; ++k)
      for (int j = 0; j < 3; ++j) out.coef.push_back(double(cv[k]->beta[j]) / double(cv[k]->p[3]));
  }
  out.spans.push_back(TileSpan{uint16_t(r.x0 >> kTileShift), uint16_t(r.x1 >> kTileShift),
                               uint16_t(r.y0 >> kTileShift), uint16_t(r.y1 >> kTileShift)});
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
    const double q0 = pc.plane[0], q1 = pc.plane[1], q2 = pc.plane[2];
    pc.plane[0] = (double(e.a[0]) * q0 + double(e.a[1]) * q1 + double(e.a[2]) * q2) * inv;
    pc.plane[1] = (double(e.b[0]) * q0 + double(e.b[1]) * q1 + double(e.b[2]) * q2) * inv;
    pc.plane[2] = (double(e.c[0]) * q0 + double(e.c[1]) * q1 + double(e.c[2]) * q2) * inv;
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

#if defined(__SSE2__)
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

bool setup_faces(const float* pos, int64_t num_vertices, const int32_t* faces, int64_t f0, int64_t f1,
                 const ScreenMap& map, ChunkOut& out) {
  ClipVertex poly[kMaxPoly];
  float fx[kMaxPoly], fy[kMaxPoly], q[kMaxPoly];
  bool ok[kMaxPoly];
  // Two stages over batches of faces: projection of every face, then the integer setup of the
  // unclipped ones. Separate loops give the CPU independent work to overlap (each face alone is
  // a long chain of dependent divisions).
  constexpr int kBatch = 64;
  int32_t BX[kBatch][3], BY[kBatch][3];
  float BQ[kBatch][3], BW[kBatch][3];
  FaceKind kind[kBatch];
  for (int64_t fb = f0; fb < f1; fb += kBatch) {
    const int nb = int(std::min<int64_t>(kBatch, f1 - fb));
    for (int j = 0; j < nb; ++j) {
      const int32_t* tri = faces + 3 * (fb + j);
      const int32_t i0 = tri[0], i1 = tri[1], i2 = tri[2];
      if ((i0 < 0) | (i0 >= num_vertices) | (i1 < 0) | (i1 >= num_vertices) | (i2 < 0) | (i2 >= num_vertices))
        return false;
      const float* v[3] = {pos + 4 * int64_t(i0), pos + 4 * int64_t(i1), pos + 4 * int64_t(i2)};
      kind[j] = fast_face(v, map, BX[j], BY[j], BQ[j], BW[j]);
    }
    const size_t first_piece = out.pieces.size();
    for (int j = 0; j < nb; ++j) {
      const uint32_t f = uint32_t(fb + j);
      if (kind[j] == FaceKind::kDone) emit_piece(BX[j], BY[j], BQ[j], BW[j], nullptr, f, map, out);
      if (kind[j] != FaceKind::kClip) continue;

      // Some vertex is outside some plane: clip, then the fan (0, i, i + 1).
      const int32_t* tri = faces + 3 * int64_t(f);
      for (int k = 0; k < 3; ++k) {
        const float* v = pos + 4 * int64_t(tri[k]);
        for (int jj = 0; jj < 4; ++jj) poly[k].p[jj] = v[jj];
        for (int jj = 0; jj < 3; ++jj) poly[k].beta[jj] = (jj == k) ? 1.0f : 0.0f;
      }
      const int n = clip_polygon(poly, 3);
      for (int i = 0; i < n; ++i) ok[i] = project(poly[i].p, map, fx[i], fy[i], q[i]);
      for (int i = 1; i + 1 < n; ++i) {
        if (!(ok[0] && ok[i] && ok[i + 1])) continue;
        const int idx[3] = {0, i, i + 1};
        const ClipVertex* cv[3];
        int32_t X[3], Y[3];
        float qq[3];
        for (int k = 0; k < 3; ++k) {
          X[k] = int32_t(fx[idx[k]]);
          Y[k] = int32_t(fy[idx[k]]);
          qq[k] = q[idx[k]];
          cv[k] = &poly[idx[k]];
        }
        emit_piece(X, Y, qq, nullptr, cv, f, map, out);
      }
    }
    finish_planes(out.pieces.data(), first_piece, out.pieces.size());
  }
  return true;
}

}  // namespace raster
}  // namespace render_npu
