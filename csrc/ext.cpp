// The one binding file: numpy buffers in and out, no libtorch. Bounds and shape checks that
// protect the C++ code live in Python (render_npu/_validate.py); the checks here are the last
// line of defence against a caller that bypasses it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "inpaint/inpaint.h"
#include "rasterize/rasterize_cpu.h"

namespace py = pybind11;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;  // no forcecast: dtype must already match

template <typename T>
void require_shape(const CArray<T>& a, std::initializer_list<py::ssize_t> shape, const char* name) {
  if (a.ndim() != static_cast<py::ssize_t>(shape.size())) {
    throw std::invalid_argument(std::string(name) + ": wrong number of dimensions");
  }
  py::ssize_t i = 0;
  for (auto s : shape) {
    if (s >= 0 && a.shape(i) != s) throw std::invalid_argument(std::string(name) + ": wrong shape");
    ++i;
  }
}

// ---- rasterize ---------------------------------------------------------------------------------
void rasterize_binding(CArray<float> pos, CArray<int32_t> faces, int height, int width, bool opengl,
                       bool cull, int num_threads, CArray<float> rast, CArray<float> depth) {
  require_shape(pos, {-1, -1, 4}, "pos_clip");
  require_shape(faces, {-1, 3}, "faces");
  const auto B = pos.shape(0), V = pos.shape(1), F = faces.shape(0);
  if (height < 1 || width < 1 || height > 16384 || width > 16384)
    throw std::invalid_argument("resolution: out of range");
  require_shape(rast, {B, height, width, 4}, "rast");
  require_shape(depth, {B, height, width}, "depth");
  render_npu::RasterConfig cfg;
  cfg.height = height;
  cfg.width = width;
  cfg.opengl_viewport = opengl;
  cfg.cull_backfaces = cull;
  cfg.num_threads = num_threads < 1 ? 1 : num_threads;
  const float* p = pos.data();
  const int32_t* f = faces.data();
  float* r = rast.mutable_data();
  float* d = depth.mutable_data();
  py::gil_scoped_release release;
  render_npu::rasterize_cpu(p, B, V, f, F, cfg, r, d);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "render_npu compiled CPU kernels (rasterizer, mesh inpaint)";
  m.def("rasterize", &rasterize_binding, py::arg("pos"), py::arg("faces"), py::arg("height"),
        py::arg("width"), py::arg("opengl"), py::arg("cull_backfaces"), py::arg("num_threads"),
        py::arg("rast"), py::arg("depth"),
        "Rasterize into preallocated rast [B,H,W,4] and depth [B,H,W] (float32). Releases the GIL.");
  // ---- inpaint section (owned by the inpaint work) ----
}
