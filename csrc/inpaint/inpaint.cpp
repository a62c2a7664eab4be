// Mesh-aware vertex-colour inpaint. Specification: docs/inpaint.md. The float arithmetic is
// spelled out operation by operation (and the module is built with -ffp-contract=off) because
// the Python fallback in render_npu/mesh_processor.py reproduces it bit for bit.
#include "inpaint/inpaint.h"

#include <cmath>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace render_npu {
namespace {

// Hunyuan3D's vertex distance weight, in float32 throughout:
// w = (1 / max(sqrt((dx*dx + dy*dy) + dz*dz), 1e-4f))^2, with dx = a.x - b.x (so w(a,b) == w(b,a)).
// The max keeps a NaN distance (std::max(d, 1e-4f) returns d unless d < 1e-4f).
inline float distance_weight(const float* a, const float* b) {
  const float dx = a[0] - b[0];
  const float dy = a[1] - b[1];
  const float dz = a[2] - b[2];
  const float d = std::sqrt(dx * dx + dy * dy + dz * dz);
  const float m = d < 1e-4f ? 1e-4f : d;
  const float r = 1.0f / m;
  return r * r;
}

// Texel of one UV as Hunyuan3D computes it: col = round(float32(u * (W - 1))) in float,
// row = round((1.0 - double(v)) * (H - 1)) in double; round() is half away from zero.
// Returns the flat texel index row * W + col, or -1 when the texel is outside the texture.
inline int64_t texel_of(const float* uv, int64_t height, int64_t width) {
  const float col = std::round(uv[0] * static_cast<float>(width - 1));
  const double row = std::round((1.0 - static_cast<double>(uv[1])) * static_cast<double>(height - 1));
  if (!(col >= 0.0f && col <= static_cast<float>(width - 1))) return -1;
  if (!(row >= 0.0 && row <= static_cast<double>(height - 1))) return -1;
  return static_cast<int64_t>(row) * width + static_cast<int64_t>(col);
}

// Directed vertex graph in CSR form: for every face corner (faces in order, corners in order)
// the edge pos_idx[f, k] -> pos_idx[f, (k + 1) % 3]. A vertex's out-edges keep that order.
struct Graph {
  std::vector<int64_t> offsets;  // [V + 1]
  std::vector<int32_t> adj;      // [3F]
};

Graph build_graph(const int32_t* pos_idx, int64_t num_faces, int64_t num_vertices) {
  Graph g;
  g.offsets.assign(static_cast<size_t>(num_vertices) + 1, 0);
  const int64_t corners = num_faces * 3;
  for (int64_t c = 0; c < corners; ++c) ++g.offsets[static_cast<size_t>(pos_idx[c]) + 1];
  for (int64_t v = 0; v < num_vertices; ++v) g.offsets[v + 1] += g.offsets[v];
  g.adj.resize(static_cast<size_t>(corners));
  std::vector<int64_t> fill(g.offsets.begin(), g.offsets.end() - 1);
  for (int64_t f = 0; f < num_faces; ++f) {
    const int32_t* t = pos_idx + f * 3;
    g.adj[fill[t[0]]++] = t[1];
    g.adj[fill[t[1]]++] = t[2];
    g.adj[fill[t[2]]++] = t[0];
  }
  return g;
}

// The list laid out for streaming: entry i reads edges [start[i], start[i + 1]) of (q, w),
// its vertex's out-edges in graph order with their weights (pure functions of two positions,
// so computing them once changes no bit).
struct ListStream {
  std::vector<int64_t> start;
  std::vector<int32_t> q;
  std::vector<float> w;
};

ListStream build_stream(const InpaintInputs& in, const Graph& g, const std::vector<int32_t>& list) {
  ListStream s;
  s.start.resize(list.size() + 1);
  s.start[0] = 0;
  for (size_t i = 0; i < list.size(); ++i) s.start[i + 1] = s.start[i] + g.offsets[list[i] + 1] - g.offsets[list[i]];
  s.q.resize(static_cast<size_t>(s.start.back()));
  s.w.resize(static_cast<size_t>(s.start.back()));
  for (size_t i = 0; i < list.size(); ++i) {
    const int32_t p = list[i];
    const float* a = in.vtx_pos + static_cast<int64_t>(p) * 3;
    int64_t o = s.start[i];
    for (int64_t e = g.offsets[p]; e < g.offsets[p + 1]; ++e, ++o) {
      s.q[o] = g.adj[e];
      s.w[o] = distance_weight(a, in.vtx_pos + static_cast<int64_t>(g.adj[e]) * 3);
    }
  }
  return s;
}

// One pass of the smooth method over the list, updating in place (Gauss-Seidel).
// kC > 0: compile-time channel count; kC == 0: runtime count `channels` (acc holds it).
// Returns the number of entries that found no coloured neighbour.
template <int kC>
int64_t smooth_pass(const std::vector<int32_t>& list, const ListStream& s, uint8_t* colored, float* color,
                    int64_t channels, float* acc_dyn) {
  const int64_t C = kC > 0 ? kC : channels;
  int64_t uncolored = 0;
  float acc_fixed[kC > 0 ? kC : 1];
  float* acc = kC > 0 ? acc_fixed : acc_dyn;
  const int64_t n = static_cast<int64_t>(list.size());
  const int32_t* sq = s.q.data();
  const float* sw = s.w.data();
  for (int64_t i = 0; i < n; ++i) {
    const int32_t p = list[i];
    for (int64_t c = 0; c < C; ++c) acc[c] = 0.0f;
    float total = 0.0f;
    const int64_t e1 = s.start[i + 1];
    for (int64_t e = s.start[i]; e < e1; ++e) {
      // Branch-free "skip uncoloured neighbours": an uncoloured vertex still has its initial
      // colour +0.0, so with w = 0 it adds exactly +0.0, which changes no sum (a sum that starts
      // at +0.0 is never -0.0); a NaN weight of an uncoloured neighbour is dropped the same way.
      const int32_t q = sq[e];
      const float w = colored[q] ? sw[e] : 0.0f;
      const float* cq = color + static_cast<int64_t>(q) * C;
      for (int64_t c = 0; c < C; ++c) acc[c] += cq[c] * w;
      total += w;
    }
    if (total > 0.0f) {
      float* cp = color + static_cast<int64_t>(p) * C;
      for (int64_t c = 0; c < C; ++c) cp[c] = acc[c] / total;
      colored[p] = 1;
    } else {
      ++uncolored;
    }
  }
  return uncolored;
}

int64_t smooth_pass_dispatch(const std::vector<int32_t>& list, const ListStream& s, uint8_t* colored,
                             float* color, int64_t channels, float* acc) {
  switch (channels) {
    case 1: return smooth_pass<1>(list, s, colored, color, channels, acc);
    case 2: return smooth_pass<2>(list, s, colored, color, channels, acc);
    case 3: return smooth_pass<3>(list, s, colored, color, channels, acc);
    case 4: return smooth_pass<4>(list, s, colored, color, channels, acc);
    default: return smooth_pass<0>(list, s, colored, color, channels, acc);
  }
}

void run_smooth(const InpaintInputs& in, const Graph& g, const std::vector<int32_t>& list,
                std::vector<uint8_t>& colored, std::vector<float>& color, InpaintStats& stats) {
  const ListStream s = build_stream(in, g, list);
  std::vector<float> acc(static_cast<size_t>(in.channels), 0.0f);
  // Hunyuan3D's stopping rule: +1 when the count changed, -1 when it did not; stop at 0.
  // The count never grows, and once it repeats the coloured set is fixed, so this terminates.
  int64_t smooth_count = 2;
  int64_t last = 0;
  while (smooth_count > 0) {
    const int64_t count = smooth_pass_dispatch(list, s, colored.data(), color.data(), in.channels, acc.data());
    ++stats.iterations;
    if (count == last) {
      --smooth_count;
    } else {
      ++smooth_count;
    }
    last = count;
  }
  stats.last_uncolored = last;
}

void run_forward(const InpaintInputs& in, const Graph& g, std::vector<uint8_t>& colored,
                 std::vector<float>& color, InpaintStats& stats) {
  const int64_t V = in.num_vertices, C = in.channels;
  // vm: 1 = coloured, 0 = not reached yet, < 0 = minus the weight gathered in this layer.
  std::vector<float> vm(static_cast<size_t>(V), 0.0f);
  std::vector<int32_t> active, pending;
  for (int64_t v = 0; v < V; ++v) {
    if (colored[v]) {
      vm[v] = 1.0f;
      active.push_back(static_cast<int32_t>(v));
    }
  }
  while (!active.empty()) {
    pending.clear();
    for (const int32_t p : active) {
      const float* pp = in.vtx_pos + static_cast<int64_t>(p) * 3;
      const float* cp = color.data() + static_cast<int64_t>(p) * C;
      for (int64_t e = g.offsets[p]; e < g.offsets[p + 1]; ++e) {
        const int32_t q = g.adj[e];
        if (vm[q] > 0.0f) continue;
        const float w = distance_weight(pp, in.vtx_pos + static_cast<int64_t>(q) * 3);
        float* cq = color.data() + static_cast<int64_t>(q) * C;
        for (int64_t c = 0; c < C; ++c) cq[c] += cp[c] * w;
        // A vertex joins the next layer when first reached; a zero weight leaves vm at 0, so it
        // may join more than once (Hunyuan3D-2.1 behaves the same way).
        if (vm[q] == 0.0f) pending.push_back(q);
        vm[q] -= w;
      }
    }
    for (const int32_t q : pending) {
      float* cq = color.data() + static_cast<int64_t>(q) * C;
      const float div = -vm[q];
      for (int64_t c = 0; c < C; ++c) cq[c] /= div;
      vm[q] = 1.0f;
      colored[q] = 1;
    }
    std::swap(active, pending);
    ++stats.iterations;
  }
}

}  // namespace

InpaintStats mesh_vertex_inpaint(const InpaintInputs& in, InpaintMethod method, float* out_texture,
                                 uint8_t* out_mask) {
  const int64_t H = in.height, W = in.width, C = in.channels, V = in.num_vertices, F = in.num_faces;
  if (H < 1 || W < 1 || C < 1) throw std::invalid_argument("texture: height, width and channels must be >= 1");
  if (V < 0 || in.num_uvs < 0 || F < 0) throw std::invalid_argument("negative table size");
  if (V > INT32_MAX || in.num_uvs > INT32_MAX || F > INT32_MAX / 3)
    throw std::invalid_argument("mesh too large for int32 indices");
  if (method != InpaintMethod::kSmooth && method != InpaintMethod::kForward)
    throw std::invalid_argument("method: unknown inpaint method");

  // Texel of every UV row; -1 when outside the texture (only an error if a face uses it).
  std::vector<int64_t> uv_texel(static_cast<size_t>(in.num_uvs));
  for (int64_t t = 0; t < in.num_uvs; ++t) uv_texel[t] = texel_of(in.vtx_uv + t * 2, H, W);
  const int64_t corners = F * 3;
  std::vector<int64_t> corner_texel(static_cast<size_t>(corners));
  for (int64_t c = 0; c < corners; ++c) {
    const int32_t p = in.pos_idx[c], t = in.uv_idx[c];
    if (p < 0 || p >= V)
      throw std::out_of_range("pos_idx: value " + std::to_string(p) + " at face " + std::to_string(c / 3) +
                              " is outside [0, " + std::to_string(V) + ")");
    if (t < 0 || t >= in.num_uvs)
      throw std::out_of_range("uv_idx: value " + std::to_string(t) + " at face " + std::to_string(c / 3) +
                              " is outside [0, " + std::to_string(in.num_uvs) + ")");
    if (uv_texel[t] < 0)
      throw std::out_of_range("vtx_uv: row " + std::to_string(t) + " (used by face " + std::to_string(c / 3) +
                              ") maps to a texel outside the texture; UVs must lie in [0, 1]");
    corner_texel[c] = uv_texel[t];
  }
  uv_texel.clear();
  uv_texel.shrink_to_fit();

  // Step 1: colour vertices from painted corners (a later corner overrides an earlier one);
  // every unpainted corner appends its vertex to the list, duplicates included.
  std::vector<uint8_t> colored(static_cast<size_t>(V), 0);
  std::vector<float> color(static_cast<size_t>(V * C), 0.0f);
  std::vector<int32_t> list;
  for (int64_t c = 0; c < corners; ++c) {
    const int32_t p = in.pos_idx[c];
    const int64_t tx = corner_texel[c];
    if (in.mask[tx] > 0) {
      colored[p] = 1;
      std::memcpy(color.data() + static_cast<int64_t>(p) * C, in.texture + tx * C, sizeof(float) * C);
    } else if (method == InpaintMethod::kSmooth) {
      list.push_back(p);
    }
  }

  InpaintStats stats;
  stats.list_entries = static_cast<int64_t>(list.size());
  {
    const Graph g = build_graph(in.pos_idx, F, V);
    if (method == InpaintMethod::kSmooth) {
      run_smooth(in, g, list, colored, color, stats);
    } else {
      run_forward(in, g, colored, color, stats);
    }
  }

  // Step 4: write back on copies; every corner of a coloured vertex writes its texel.
  if (out_texture != in.texture) std::memcpy(out_texture, in.texture, sizeof(float) * H * W * C);
  if (out_mask != in.mask) std::memcpy(out_mask, in.mask, static_cast<size_t>(H * W));
  for (int64_t c = 0; c < corners; ++c) {
    const int32_t p = in.pos_idx[c];
    if (!colored[p]) continue;
    const int64_t tx = corner_texel[c];
    std::memcpy(out_texture + tx * C, color.data() + static_cast<int64_t>(p) * C, sizeof(float) * C);
    out_mask[tx] = 255;
  }
  for (int64_t v = 0; v < V; ++v) stats.colored_vertices += colored[v];
  return stats;
}

}  // namespace render_npu
