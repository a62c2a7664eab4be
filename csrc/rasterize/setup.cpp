#include "rasterize/setup.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

// reference.setup_piece for the fan piece (0, i1, i2) plus its pixel rectangle; appends it to
// `out` unless it covers nothing. `inside`: the face was not clipped (beta is the identity).
inline void emit_piece(const float* fx, const float* fy, const float* q, const ClipVertex* poly, int i1, int i2,
                       bool inside, uint32_t face, const ScreenMap& map, ChunkOut& out) {
  const int idx[3] = {0, i1, i2};
  Piece pc;
  for (int k = 0; k < 3; ++k) {
    pc.X[k] = int32_t(fx[idx[k]]);
    pc.Y[k] = int32_t(fy[idx[k]]);
  }
  const int64_t signed_area = (int64_t(pc.X[1]) - pc.X[0]) * (int64_t(pc.Y[2]) - pc.Y[0]) -
                              (int64_t(pc.X[2]) - pc.X[0]) * (int64_t(pc.Y[1]) - pc.Y[0]);
  if (signed_area == 0 || (map.cull_backfaces && signed_area < 0)) return;
  // Pieces entirely off screen need nothing else.
  const PixelRect r = piece_rect(pc.X, pc.Y, map.width, map.height);
  if (r.x0 > r.x1 || r.y0 > r.y1) return;

  const int64_t ext_x = int64_t(std::max(std::max(pc.X[0], pc.X[1]), pc.X[2])) - std::min(std::min(pc.X[0], pc.X[1]), pc.X[2]);
  const int64_t ext_y = int64_t(std::max(std::max(pc.Y[0], pc.Y[1]), pc.Y[2])) - std::min(std::min(pc.Y[0], pc.Y[1]), pc.Y[2]);
  pc.face = face | (signed_area < 0 ? Piece::kNegative : 0u) | (inside ? 0u : Piece::kClipped) |
            (ext_x <= kSmallExtent && ext_y <= kSmallExtent ? Piece::kSmall : 0u);
  Edges e;
  piece_edges(pc, e);
  const int64_t area = e.c[0] + e.c[1] + e.c[2];
  const double inv = 1.0 / double(area);
  const double q0 = q[idx[0]], q1 = q[idx[1]], q2 = q[idx[2]];
  pc.plane[0] = (double(e.a[0]) * q0 + double(e.a[1]) * q1 + double(e.a[2]) * q2) * inv;
  pc.plane[1] = (double(e.b[0]) * q0 + double(e.b[1]) * q1 + double(e.b[2]) * q2) * inv;
  pc.plane[2] = (double(e.c[0]) * q0 + double(e.c[1]) * q1 + double(e.c[2]) * q2) * inv;

  if (inside) {
    // beta is the identity: c_ik = 1/w_i on the diagonal, +0 elsewhere (w_i > 0 here since
    // z + w >= 0 and w - z >= 0 and x / w is finite); the resolve computes 1.0 / double(w_i).
    for (int k = 0; k < 3; ++k) std::memcpy(&pc.aux[k], &poly[k].p[3], sizeof(float));
  } else {
    pc.aux[0] = uint32_t(out.coef.size());
    pc.aux[1] = pc.aux[2] = 0;
    for (int k = 0; k < 3; ++k) {
      const ClipVertex& v = poly[idx[k]];
      for (int j = 0; j < 3; ++j) out.coef.push_back(double(v.beta[j]) / double(v.p[3]));
    }
  }
  out.pieces.push_back(pc);
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

inline bool inside_all_planes(const float* v) {
  const float gw = kGuardBand * v[3];
  return (v[2] + v[3] >= 0.0f) & (v[3] - v[2] >= 0.0f) & (gw - v[0] >= 0.0f) & (gw + v[0] >= 0.0f) &
         (gw - v[1] >= 0.0f) & (gw + v[1] >= 0.0f);
}

}  // namespace

bool setup_faces(const float* pos, int64_t num_vertices, const int32_t* faces, int64_t f0, int64_t f1,
                 const ScreenMap& map, ChunkOut& out) {
  ClipVertex poly[kMaxPoly];
  float fx[kMaxPoly], fy[kMaxPoly], q[kMaxPoly];
  bool ok[kMaxPoly];
  for (int64_t f = f0; f < f1; ++f) {
    const int32_t* tri = faces + 3 * f;
    const int32_t i0 = tri[0], i1 = tri[1], i2 = tri[2];
    if ((i0 < 0) | (i0 >= num_vertices) | (i1 < 0) | (i1 >= num_vertices) | (i2 < 0) | (i2 >= num_vertices))
      return false;
    const float* v[3] = {pos + 4 * int64_t(i0), pos + 4 * int64_t(i1), pos + 4 * int64_t(i2)};
    bool all_finite = true;
    for (int k = 0; k < 3; ++k)
      for (int j = 0; j < 4; ++j) all_finite &= finite(v[k][j]);
    if (!all_finite) continue;

    if (inside_all_planes(v[0]) & inside_all_planes(v[1]) & inside_all_planes(v[2])) {
      // Common case: nothing to clip, one piece.
      bool good = true;
      for (int k = 0; k < 3; ++k) {
        for (int j = 0; j < 4; ++j) poly[k].p[j] = v[k][j];
        good &= project(v[k], map, fx[k], fy[k], q[k]);
      }
      if (good) emit_piece(fx, fy, q, poly, 1, 2, true, uint32_t(f), map, out);
      continue;
    }

    for (int k = 0; k < 3; ++k) {
      for (int j = 0; j < 4; ++j) poly[k].p[j] = v[k][j];
      for (int j = 0; j < 3; ++j) poly[k].beta[j] = (j == k) ? 1.0f : 0.0f;
    }
    const int n = clip_polygon(poly, 3);
    for (int i = 0; i < n; ++i) ok[i] = project(poly[i].p, map, fx[i], fy[i], q[i]);
    for (int i = 1; i + 1 < n; ++i)
      if (ok[0] && ok[i] && ok[i + 1]) emit_piece(fx, fy, q, poly, i, i + 1, false, uint32_t(f), map, out);
  }
  return true;
}

}  // namespace raster
}  // namespace render_npu
