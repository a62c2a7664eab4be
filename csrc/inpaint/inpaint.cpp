#include "inpaint/inpaint.h"

namespace render_npu {
void mesh_vertex_inpaint_stub() {}
}  // namespace render_npu
