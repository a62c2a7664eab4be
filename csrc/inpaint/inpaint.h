// Mesh-aware vertex-colour inpaint (Hunyuan3D's meshVerticeInpaint). See docs/inpaint.md.
#pragma once
#include <cstdint>

namespace render_npu {

// Placeholder signature; the inpaint issue defines the real one.
void mesh_vertex_inpaint_stub();

}  // namespace render_npu
