// Barycentrics and depth of a covered pixel from its parent triangle's clip coordinates
// (docs/rasterization.md section 3). Their derivative with respect to those coordinates:
// resolve.cpp (rasterize_backward_cpu) and resolve_grad_impl.inc.
// Float64, operation for operation as render_npu/reference.resolve_numpy (bit-identical outputs;
// the build turns FMA contraction off).
#pragma once
#include <cmath>
#include <cstdint>

namespace render_npu {
namespace raster {

// The parent triangle in homogeneous pixel coordinates: hx_k = ax x_k + bx w_k (each product is
// exact in float64 for float32 inputs: 24 + 16 bits), likewise hy_k; z_k and w_k as given.
struct ParentPlane {
  double hx[3], hy[3], z[3], w[3];
};

// v: the three vertices (x, y, z, w), face order, float32 or float64.
template <typename T>
inline void parent_plane(const T* v0, const T* v1, const T* v2, double ax, double bx, double ay, double by,
                         ParentPlane& pp) {
  const T* v[3] = {v0, v1, v2};
  for (int k = 0; k < 3; ++k) {
    const double x = double(v[k][0]), y = double(v[k][1]), w = double(v[k][3]);
    pp.hx[k] = ax * x + bx * w;
    pp.hy[k] = ay * y + by * w;
    pp.z[k] = double(v[k][2]);
    pp.w[k] = w;
  }
}

// Solves sum_k b_k (hx_k, hy_k) = (P, Q) sum_k b_k w_k at the pixel centre (P, Q) = (px + 1/2,
// py + 1/2): u = r x s with r_k = hx_k - P w_k, s_k = hy_k - Q w_k, b = u / sum(u), then
// depth = sum u_k z_k / sum u_k w_k (the backward forms r, s, u the same way).
struct PixelSolve {
  double r[3], s[3], u[3];
  double S;        // (u0 + u1) + u2
  double num, den; // depth = num / den
};

inline void solve_pixel(const ParentPlane& pp, double P, double Q, PixelSolve& ps) {
  for (int k = 0; k < 3; ++k) {
    ps.r[k] = pp.hx[k] - P * pp.w[k];
    ps.s[k] = pp.hy[k] - Q * pp.w[k];
  }
  ps.u[0] = ps.r[1] * ps.s[2] - ps.r[2] * ps.s[1];
  ps.u[1] = ps.r[2] * ps.s[0] - ps.r[0] * ps.s[2];
  ps.u[2] = ps.r[0] * ps.s[1] - ps.r[1] * ps.s[0];
  ps.S = (ps.u[0] + ps.u[1]) + ps.u[2];
  ps.num = (ps.u[0] * pp.z[0] + ps.u[1] * pp.z[1]) + ps.u[2] * pp.z[2];
  ps.den = (ps.u[0] * pp.w[0] + ps.u[1] * pp.w[1]) + ps.u[2] * pp.w[2];
}

// Barycentrics b (clamped to >= 0 and renormalised when the snapped piece covers a centre the
// exact triangle does not) into out[0..2] and the depth into *depth, float32. A degenerate parent
// (non-finite b) gives 1/3 each; a non-finite depth gives `fallback_depth` (the depth-test value).
inline void resolve_pixel(const ParentPlane& pp, int px, int py, float fallback_depth, float* out, float* depth) {
  PixelSolve ps;
  solve_pixel(pp, double(px) + 0.5, double(py) + 0.5, ps);
  double b0 = ps.u[0] / ps.S, b1 = ps.u[1] / ps.S, b2 = ps.u[2] / ps.S;
  if (b0 < 0 || b1 < 0 || b2 < 0) {
    b0 = b0 > 0 ? b0 : 0.0;
    b1 = b1 > 0 ? b1 : 0.0;
    b2 = b2 > 0 ? b2 : 0.0;
    const double t = (b0 + b1) + b2;
    b0 = b0 / t;
    b1 = b1 / t;
    b2 = b2 / t;
  }
  const float f0 = float(b0), f1 = float(b1), f2 = float(b2);
  if (std::isfinite(f0) && std::isfinite(f1) && std::isfinite(f2)) {
    out[0] = f0;
    out[1] = f1;
    out[2] = f2;
  } else {
    out[0] = out[1] = out[2] = float(1.0 / 3.0);
  }
  const float d = float(ps.num / ps.den);
  *depth = std::isfinite(d) ? d : fallback_depth;
}

}  // namespace raster
}  // namespace render_npu
