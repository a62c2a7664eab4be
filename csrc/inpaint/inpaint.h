// Mesh-aware vertex-colour inpaint, result-compatible with Hunyuan3D's meshVerticeInpaint
// ("smooth", and Hunyuan3D-2.1's "forward"). The algorithm, its quirks and the exact float
// arithmetic are specified in docs/inpaint.md; render_npu/mesh_processor.py holds the Python
// fallback that computes the same bits.
#pragma once
#include <cstdint>

namespace render_npu {

enum class InpaintMethod : int {
  kSmooth = 0,   // repeated Gauss-Seidel passes over the uncoloured-corner list (Hunyuan3D default)
  kForward = 1,  // one multi-source breadth-first propagation, O(V + E) (Hunyuan3D-2.1 "forward")
};

// Inputs: C-contiguous buffers. Indices are int32; texture [H, W, C] float32; mask [H, W] uint8.
struct InpaintInputs {
  const float* texture = nullptr;
  const uint8_t* mask = nullptr;
  int64_t height = 0, width = 0, channels = 0;
  const float* vtx_pos = nullptr;  // [num_vertices, 3]
  int64_t num_vertices = 0;
  const float* vtx_uv = nullptr;  // [num_uvs, 2]
  int64_t num_uvs = 0;
  const int32_t* pos_idx = nullptr;  // [num_faces, 3]
  const int32_t* uv_idx = nullptr;   // [num_faces, 3]
  int64_t num_faces = 0;
};

struct InpaintStats {
  int64_t iterations = 0;        // smooth: passes over the list; forward: BFS layers
  int64_t list_entries = 0;      // smooth: length of the uncoloured-corner list (duplicates included)
  int64_t last_uncolored = 0;    // smooth: entries without a coloured neighbour in the last pass
  int64_t colored_vertices = 0;  // vertices that end up coloured (and so are written back)
};

// Writes the inpainted copy of texture/mask into out_texture [H, W, C] / out_mask [H, W]
// (out_* may alias texture/mask: every read of the inputs happens before the first write).
// Throws std::out_of_range for an index outside its table or a UV whose texel falls outside
// the texture; std::invalid_argument for bad sizes. Holds no Python state: call without the GIL.
InpaintStats mesh_vertex_inpaint(const InpaintInputs& in, InpaintMethod method, float* out_texture,
                                 uint8_t* out_mask);

}  // namespace render_npu
