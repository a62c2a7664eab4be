// The one binding file: numpy buffers in and out, no libtorch. Bounds and shape checks that
// protect the C++ code live in Python (render_npu/_validate.py); the checks here are the last
// line of defence against a caller that bypasses it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bake/bake.h"
#include "inpaint/harmonic.h"
#include "inpaint/inpaint.h"
#include "interpolate/interpolate.h"
#include "splat/splat.h"
#include "rasterize/rasterize_cpu.h"
#include "texture/texture_cpu.h"
#include "../ascendc_kernels/fine_raster_format.h"     // AscendC kernel buffer layout
#include "../ascendc_kernels/host/fine_raster_host.h"  // AscendC kernel, host emulation

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
render_npu::RasterKernel parse_kernel(const std::string& kernel) {
  if (kernel == "auto") return render_npu::RasterKernel::kAuto;
  if (kernel == "scalar") return render_npu::RasterKernel::kScalar;
  if (kernel == "avx2") return render_npu::RasterKernel::kAvx2;
  throw std::invalid_argument("kernel must be 'auto', 'scalar' or 'avx2', got '" + kernel + "'");
}

void rasterize_binding(CArray<float> pos, CArray<int32_t> faces, int height, int width, bool opengl,
                       bool cull, int num_threads, CArray<float> rast, CArray<float> depth,
                       const std::string& kernel, bool zero_filled) {
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
  cfg.kernel = parse_kernel(kernel);
  cfg.zero_filled = zero_filled;
  const float* p = pos.data();
  const int32_t* f = faces.data();
  float* r = rast.mutable_data();
  float* d = depth.mutable_data();
  py::gil_scoped_release release;
  render_npu::rasterize_cpu(p, B, V, f, F, cfg, r, d);
}

// ---- rasterize backward ------------------------------------------------------------------------
template <typename G>
void rasterize_backward_typed(CArray<double> pos, CArray<int32_t> faces, CArray<float> rast, bool opengl,
                              py::object grad_bary, py::object grad_depth, int num_threads, CArray<double> grad_pos,
                              render_npu::RasterKernel kernel) {
  require_shape(pos, {-1, -1, 4}, "pos_clip");
  require_shape(faces, {-1, 3}, "faces");
  require_shape(rast, {pos.shape(0), -1, -1, 4}, "rast");
  const auto B = pos.shape(0), V = pos.shape(1), F = faces.shape(0), H = rast.shape(1), W = rast.shape(2);
  if (H < 1 || W < 1 || H > 16384 || W > 16384) throw std::invalid_argument("resolution: out of range");
  require_shape(grad_pos, {B, V, 4}, "grad_pos");
  const G* gb = nullptr;
  const G* gd = nullptr;
  int stride = 3;
  CArray<G> gba, gda;
  if (!grad_bary.is_none()) {
    gba = py::cast<CArray<G>>(grad_bary);
    if (gba.ndim() != 4 || gba.shape(0) != B || gba.shape(1) != H || gba.shape(2) != W ||
        (gba.shape(3) != 3 && gba.shape(3) != 4))
      throw std::invalid_argument("grad_bary: wrong shape");
    stride = int(gba.shape(3));
    gb = gba.data();
  }
  if (!grad_depth.is_none()) {
    gda = py::cast<CArray<G>>(grad_depth);
    require_shape(gda, {B, H, W}, "grad_depth");
    gd = gda.data();
  }
  const double* p = pos.data();
  const int32_t* f = faces.data();
  const float* r = rast.data();
  double* g = grad_pos.mutable_data();
  py::gil_scoped_release release;
  render_npu::rasterize_backward_cpu<G>(p, B, V, f, F, int(H), int(W), opengl, r, gb, stride, gd, num_threads, g,
                                        kernel);
}

void rasterize_backward_binding(CArray<double> pos, CArray<int32_t> faces, CArray<float> rast, bool opengl,
                                py::object grad_bary, py::object grad_depth, int num_threads,
                                CArray<double> grad_pos, bool float64_grads, const std::string& kernel) {
  const render_npu::RasterKernel k = parse_kernel(kernel);
  if (float64_grads)
    rasterize_backward_typed<double>(pos, faces, rast, opengl, grad_bary, grad_depth, num_threads, grad_pos, k);
  else
    rasterize_backward_typed<float>(pos, faces, rast, opengl, grad_bary, grad_depth, num_threads, grad_pos, k);
}

// ---- texture ------------------------------------------------------------------------------------
// levels: [Bt, h_k, w_k, C] float32 arrays (mip level k); uv [B, H, W, 2]; uv_da [B, H, W, 4] or None;
// bias [B, H, W] or None; out [B, H, W, C]. filter 0..3 = nearest, linear, linear-mipmap-nearest,
// linear-mipmap-linear; boundary 0..2 = wrap, clamp, zero.
void texture_forward_binding(const std::vector<CArray<float>>& levels, CArray<float> uv, py::object uv_da,
                             py::object bias, int filter, int boundary, int num_threads, CArray<float> out) {
  if (levels.empty()) throw std::invalid_argument("levels: at least one level");
  require_shape(uv, {-1, -1, -1, 2}, "uv");
  const auto B = uv.shape(0), H = uv.shape(1), W = uv.shape(2);
  const auto Bt = levels[0].shape(0), C = levels[0].shape(3);
  if (Bt != 1 && Bt != B) throw std::invalid_argument("levels: batch must be 1 or uv's");
  std::vector<render_npu::TexLevel> lv;
  for (const auto& a : levels) {
    require_shape(a, {Bt, -1, -1, C}, "levels");
    if (a.shape(1) < 1 || a.shape(2) < 1) throw std::invalid_argument("levels: empty level");
    lv.push_back({a.data(), a.shape(1), a.shape(2)});
  }
  require_shape(out, {B, H, W, C}, "out");
  if (filter < 0 || filter > 3) throw std::invalid_argument("filter: 0..3");
  if (boundary < 0 || boundary > 2) throw std::invalid_argument("boundary: 0..2");
  CArray<float> da, bi;
  const float* da_p = nullptr;
  const float* bi_p = nullptr;
  if (!uv_da.is_none()) {
    da = uv_da.cast<CArray<float>>();
    require_shape(da, {B, H, W, 4}, "uv_da");
    da_p = da.data();
  }
  if (!bias.is_none()) {
    bi = bias.cast<CArray<float>>();
    require_shape(bi, {B, H, W}, "mip_level_bias");
    bi_p = bi.data();
  }
  if (filter >= 2 && !da_p && !bi_p) throw std::invalid_argument("mipmapped filter needs uv_da or bias");
  const float* u = uv.data();
  float* o = out.mutable_data();
  py::gil_scoped_release release;
  render_npu::texture_forward_cpu(lv, Bt, C, u, da_p, bi_p, B, H, W, static_cast<render_npu::TexFilter>(filter),
                                  static_cast<render_npu::TexBoundary>(boundary), num_threads, o);
}

// ---- inpaint -----------------------------------------------------------------------------------
// Returns (iterations, list_entries, last_uncolored, colored_vertices).
py::tuple mesh_vertex_inpaint_binding(CArray<float> texture, CArray<uint8_t> mask, CArray<float> vtx_pos,
                                      CArray<float> vtx_uv, CArray<int32_t> pos_idx, CArray<int32_t> uv_idx,
                                      int method, CArray<float> out_texture, CArray<uint8_t> out_mask) {
  require_shape(texture, {-1, -1, -1}, "texture");
  const auto H = texture.shape(0), W = texture.shape(1), C = texture.shape(2);
  require_shape(mask, {H, W}, "mask");
  require_shape(vtx_pos, {-1, 3}, "vtx_pos");
  require_shape(vtx_uv, {-1, 2}, "vtx_uv");
  require_shape(pos_idx, {-1, 3}, "pos_idx");
  require_shape(uv_idx, {pos_idx.shape(0), 3}, "uv_idx");
  require_shape(out_texture, {H, W, C}, "out_texture");
  require_shape(out_mask, {H, W}, "out_mask");
  if (method != 0 && method != 1) throw std::invalid_argument("method: must be 0 (smooth) or 1 (forward)");
  render_npu::InpaintInputs in;
  in.texture = texture.data();
  in.mask = mask.data();
  in.height = H;
  in.width = W;
  in.channels = C;
  in.vtx_pos = vtx_pos.data();
  in.num_vertices = vtx_pos.shape(0);
  in.vtx_uv = vtx_uv.data();
  in.num_uvs = vtx_uv.shape(0);
  in.pos_idx = pos_idx.data();
  in.uv_idx = uv_idx.data();
  in.num_faces = pos_idx.shape(0);
  float* ot = out_texture.mutable_data();
  uint8_t* om = out_mask.mutable_data();
  render_npu::InpaintStats st;
  {
    py::gil_scoped_release release;
    st = render_npu::mesh_vertex_inpaint(in, static_cast<render_npu::InpaintMethod>(method), ot, om);
  }
  return py::make_tuple(st.iterations, st.list_entries, st.last_uncolored, st.colored_vertices);
}

// texgen.inpaint.harmonic_fill: texture float32 [H, W, C] filled in place; known, domain uint8
// [H, W] (domain None: everything). Returns the number of texels filled.
int64_t harmonic_fill_binding(CArray<float> texture, CArray<uint8_t> known, py::object domain, int iters,
                              int num_threads, const std::string& kernel) {
  if (kernel != "auto" && kernel != "portable") throw std::invalid_argument("kernel must be 'auto' or 'portable'");
  require_shape(texture, {-1, -1, -1}, "texture");
  const auto H = texture.shape(0), W = texture.shape(1);
  require_shape(known, {H, W}, "known");
  CArray<uint8_t> dom;
  render_npu::HarmonicFillArgs a;
  if (!domain.is_none()) {
    dom = domain.cast<CArray<uint8_t>>();
    require_shape(dom, {H, W}, "domain");
    a.domain = dom.data();
  }
  a.texture = texture.mutable_data();
  a.known = known.data();
  a.height = H;
  a.width = W;
  a.channels = texture.shape(2);
  a.iters = iters;
  a.num_threads = num_threads < 1 ? 1 : num_threads;
  a.portable = kernel == "portable";
  py::gil_scoped_release release;
  return render_npu::harmonic_fill(a);
}

// ---- AscendC kernel, host emulation -------------------------------------------------------------
// Buffers in the kernel's format (ascendc_kernels/fine_raster_format.h); returns the emulator's
// instruction statistics as a dict.
py::dict ascendc_host_fine_raster_binding(CArray<float> coords, CArray<int32_t> tiles, CArray<int32_t> lists,
                                          CArray<int64_t> rec_i, CArray<float> rec_f, CArray<float> out,
                                          int block_dim, int num_threads, bool device_rounding) {
  namespace fmt = render_npu_ascendc;
  require_shape(coords, {fmt::kCoordsWords}, "coords");
  require_shape(tiles, {-1, fmt::kTileDescWords}, "tiles");
  require_shape(lists, {-1}, "lists");
  require_shape(rec_i, {-1, fmt::kRecIWords}, "rec_i");
  const auto num_pieces = rec_i.shape(0), num_tiles = tiles.shape(0);
  require_shape(rec_f, {num_pieces, fmt::kRecFWords}, "rec_f");
  require_shape(out, {num_tiles, fmt::kOutPerTile}, "out");
  const float* c = coords.data();
  const int32_t* t = tiles.data();
  const int32_t* l = lists.data();
  const int64_t* ri = rec_i.data();
  const float* rf = rec_f.data();
  float* o = out.mutable_data();
  const auto list_len = lists.shape(0);
  fmt::HostRunStats st;
  {
    py::gil_scoped_release release;
    st = fmt::fine_raster_host(c, t, num_tiles, l, list_len, ri, rf, num_pieces, o, block_dim, num_threads,
                               device_rounding);
  }
  py::dict d;
  d["vector_instructions"] = st.vector_instructions;
  d["vector_repeats"] = st.vector_repeats;
  d["vector_elements"] = st.vector_elements;
  d["dma_copies"] = st.dma_copies;
  d["dma_bytes"] = st.dma_bytes;
  d["scalar_gm_reads"] = st.scalar_gm_reads;
  d["ub_bytes_peak"] = st.ub_bytes_peak;
  return d;
}

// ---- interpolate -------------------------------------------------------------------------------
// Pixel arrays are numpy views (any strides that step uniformly over the pixels): bary's last
// dimension holds b0, b1, b2 (and may be longer: rast[..., :4]), ids has one value per pixel.
py::ssize_t uniform_pixel_stride(const py::array& a, int pixel_dims, py::ssize_t pixels, const char* name) {
  py::ssize_t count = 1, stride = -1;
  for (int d = pixel_dims - 1; d >= 0; --d) {
    if (a.shape(d) == 1) continue;
    if (stride < 0) {
      stride = a.strides(d);
    } else if (a.strides(d) != stride * count) {
      throw std::invalid_argument(std::string(name) + ": pixels must be evenly strided");
    }
    count *= a.shape(d);
  }
  count = 1;
  for (int d = 0; d < pixel_dims; ++d) count *= a.shape(d);
  if (count != pixels) throw std::invalid_argument(std::string(name) + ": wrong number of pixels");
  if (stride < 0) stride = a.itemsize();
  if (stride <= 0 || stride % a.itemsize()) throw std::invalid_argument(std::string(name) + ": bad strides");
  return stride / a.itemsize();
}

template <typename T, typename I>
py::object interpolate_dispatch(const py::array& attr, const py::array& bary, const py::array& ids,
                                const CArray<int32_t>& faces, py::ssize_t batch, int num_threads,
                                py::object grad_out, py::object out, py::object grad_attr, py::object grad_bary,
                                py::object background, py::object db, py::object out_db) {
  if (attr.ndim() != 3 || !(attr.flags() & py::array::c_style))
    throw std::invalid_argument("attr: must be C-contiguous [Ba, V, C]");
  const auto Ba = attr.shape(0), V = attr.shape(1), C = attr.shape(2);
  if (Ba != 1 && Ba != batch) throw std::invalid_argument("attr: batch must be 1 or B");
  if (bary.ndim() < 2 || bary.shape(bary.ndim() - 1) < 3 || bary.strides(bary.ndim() - 1) != bary.itemsize())
    throw std::invalid_argument("bary: last dimension must hold b0, b1, b2 contiguously");
  py::ssize_t pixels = 1;
  for (int d = 0; d < bary.ndim() - 1; ++d) pixels *= bary.shape(d);
  if (batch < 1 || pixels % batch) throw std::invalid_argument("bary: pixels not divisible by batch");
  require_shape(faces, {-1, 3}, "faces");
  render_npu::InterpolateArgs<T, I> a;
  a.attr = static_cast<const T*>(attr.data());
  a.attr_batch_stride = Ba == 1 ? 0 : V * C;
  a.num_vertices = V;
  a.channels = C;
  a.bary = static_cast<const T*>(bary.data());
  a.bary_stride = uniform_pixel_stride(bary, int(bary.ndim()) - 1, pixels, "bary");
  a.ids = static_cast<const I*>(ids.data());
  a.id_stride = uniform_pixel_stride(ids, int(ids.ndim()), pixels, "ids");
  a.batch = batch;
  a.pixels = pixels / batch;
  a.faces = faces.data();
  a.num_faces = faces.shape(0);
  a.num_threads = num_threads < 1 ? 1 : num_threads;
  auto buffer = [&](py::object o, std::initializer_list<py::ssize_t> shape, const char* name) -> T* {
    if (o.is_none()) return nullptr;
    auto arr = o.cast<CArray<T>>();
    require_shape(arr, shape, name);
    return arr.mutable_data();
  };
  CArray<T> bg_arr;
  if (!background.is_none()) {
    bg_arr = background.cast<CArray<T>>();
    require_shape(bg_arr, {C}, "background");
    a.background = bg_arr.data();
  }
  if (!db.is_none()) {  // forward only: attribute derivatives in the same pass
    auto d = db.cast<py::array>();
    if (!d.dtype().is(attr.dtype()) || d.ndim() < 2 || d.shape(d.ndim() - 1) != 4 ||
        d.strides(d.ndim() - 1) != d.itemsize())
      throw std::invalid_argument("db: attr's dtype, last dimension (du/dX, du/dY, dv/dX, dv/dY) contiguous");
    a.db = static_cast<const T*>(d.data());
    a.db_stride = uniform_pixel_stride(d, int(d.ndim()) - 1, pixels, "db");
    a.out_db = buffer(out_db, {pixels, 2 * C}, "out_db");
    if (!a.out_db || !grad_out.is_none()) throw std::invalid_argument("db: needs out_db, forward only");
  }
  if (grad_out.is_none()) {
    T* o = buffer(out, {pixels, C}, "out");
    if (!o) throw std::invalid_argument("out: required");
    py::gil_scoped_release release;
    return py::int_(render_npu::interpolate_forward(a, o));
  }
  auto g = grad_out.cast<CArray<T>>();
  require_shape(g, {pixels, C}, "grad_out");
  T* ga = buffer(grad_attr, {Ba, V, C}, "grad_attr");
  T* gb = buffer(grad_bary, {pixels, 3}, "grad_bary");
  const T* gp = g.data();
  {
    py::gil_scoped_release release;
    render_npu::interpolate_backward(a, gp, ga, gb);
  }
  return py::none();
}

// The ids' dtype picks I for attr's T.
template <typename T>
py::object interpolate_for_ids(const py::array& attr, const py::array& bary, const py::array& ids,
                               const CArray<int32_t>& faces, py::ssize_t batch, int num_threads, py::object out,
                               py::object grad_out, py::object grad_attr, py::object grad_bary, py::object background,
                               py::object db, py::object out_db) {
  const auto& idt = ids.dtype();
  if (idt.is(py::dtype::of<float>()))
    return interpolate_dispatch<T, float>(attr, bary, ids, faces, batch, num_threads, grad_out, out, grad_attr, grad_bary, background, db, out_db);
  if (idt.is(py::dtype::of<double>()))
    return interpolate_dispatch<T, double>(attr, bary, ids, faces, batch, num_threads, grad_out, out, grad_attr, grad_bary, background, db, out_db);
  if (idt.is(py::dtype::of<int32_t>()))
    return interpolate_dispatch<T, int32_t>(attr, bary, ids, faces, batch, num_threads, grad_out, out, grad_attr, grad_bary, background, db, out_db);
  throw std::invalid_argument("ids: float32, float64 or int32");
}

py::object interpolate_binding(py::array attr, py::array bary, py::array ids, CArray<int32_t> faces,
                               py::ssize_t batch, int num_threads, py::object out, py::object grad_out,
                               py::object grad_attr, py::object grad_bary, py::object background, py::object db,
                               py::object out_db) {
  const bool f64 = attr.dtype().is(py::dtype::of<double>());
  if (!f64 && !attr.dtype().is(py::dtype::of<float>())) throw std::invalid_argument("attr: float32 or float64");
  if (!bary.dtype().is(attr.dtype())) throw std::invalid_argument("bary: must have attr's dtype");
  return f64 ? interpolate_for_ids<double>(attr, bary, ids, faces, batch, num_threads, out, grad_out, grad_attr,
                                           grad_bary, background, db, out_db)
             : interpolate_for_ids<float>(attr, bary, ids, faces, batch, num_threads, out, grad_out, grad_attr,
                                          grad_bary, background, db, out_db);
}

// ---- splat -------------------------------------------------------------------------------------
void splat_binding(CArray<float> coords, py::array values_any, py::object index, py::object extra,
                   CArray<float> out, py::object out_extra, py::object count_obj, bool normalize, int num_threads) {
  require_shape(coords, {-1, 2}, "coords");
  const auto N = coords.shape(0);
  CArray<float> values;
  CArray<uint8_t> values_u8;
  const bool u8 = values_any.dtype().is(py::dtype::of<uint8_t>());
  if (u8)
    values_u8 = py::cast<CArray<uint8_t>>(values_any);
  else
    values = py::cast<CArray<float>>(values_any);
  if (u8) require_shape(values_u8, {-1, -1}, "values");
  else require_shape(values, {-1, -1}, "values");
  const auto M = u8 ? values_u8.shape(0) : values.shape(0), C = u8 ? values_u8.shape(1) : values.shape(1);
  require_shape(out, {-1, -1, C}, "out");
  const auto H = out.shape(0), W = out.shape(1);
  CArray<float> count;
  if (!count_obj.is_none()) {
    count = count_obj.cast<CArray<float>>();
    require_shape(count, {H, W}, "count");
  }
  if (H < 2 || W < 2) throw std::invalid_argument("out: the grid must be at least 2 x 2");
  render_npu::SplatArgs a;
  const int64_t* idx = nullptr;
  CArray<int64_t> index_arr;
  if (!index.is_none()) {
    index_arr = index.cast<CArray<int64_t>>();
    require_shape(index_arr, {N}, "index");
    idx = index_arr.data();
    for (py::ssize_t i = 0; i < N; ++i)  // the last line of defence: rows must exist
      if (idx[i] < 0 || idx[i] >= M) throw std::invalid_argument("index: out of range");
  } else if (M != N) {
    throw std::invalid_argument("values: one row per sample without an index");
  }
  CArray<float> extra_arr, out_extra_arr;
  py::ssize_t E = 0;
  if (!extra.is_none()) {
    extra_arr = extra.cast<CArray<float>>();
    require_shape(extra_arr, {-1, N}, "extra");
    E = extra_arr.shape(0);
    out_extra_arr = out_extra.cast<CArray<float>>();
    require_shape(out_extra_arr, {E, H, W}, "out_extra");
  }
  a.coords = coords.data();
  a.n = N;
  if (u8)
    a.values_u8 = values_u8.data();
  else
    a.values = values.data();
  a.index = idx;
  a.channels = C;
  a.extra = E ? extra_arr.data() : nullptr;
  a.extra_channels = E;
  a.height = H;
  a.width = W;
  a.normalize = normalize;
  a.num_threads = num_threads;
  float* op = out.mutable_data();
  float* oe = E ? out_extra_arr.mutable_data() : nullptr;
  float* cp = count_obj.is_none() ? nullptr : count.mutable_data();
  py::gil_scoped_release release;
  render_npu::splat_bilinear(a, op, oe, cp);
}

// ---- bake (Hunyuan3D MeshRender rules) -----------------------------------------------------------
// faces [F, 3] int32 indexing a table of `rows` rows: checked once here, so the kernels need not
const int32_t* checked_faces(const CArray<int32_t>& faces, py::ssize_t rows, const char* name) {
  require_shape(faces, {-1, 3}, name);
  const int32_t* f = faces.data();
  for (py::ssize_t i = 0; i < faces.size(); ++i)
    if (f[i] < 0 || f[i] >= rows) throw std::invalid_argument(std::string(name) + ": vertex index out of range");
  return f;
}

int64_t select_samples_binding(CArray<uint8_t> visible, CArray<uint8_t> sketch, py::object uv_obj, py::object cos_obj,
                               CArray<int64_t> idx, CArray<float> coords, CArray<float> extra, int num_threads,
                               py::object rast_obj, py::object uv_faces_obj, py::object vtx_uv_obj,
                               py::object normal_obj, float cos_thres, py::object vtx_normal_obj,
                               py::object normal_faces_obj) {
  require_shape(visible, {-1}, "visible");
  const auto P = visible.shape(0);
  require_shape(sketch, {P}, "sketch");
  render_npu::SelectArgs a;
  CArray<float> uv, rast, vtx_uv;
  CArray<int32_t> uv_faces;
  if (!uv_obj.is_none()) {
    uv = uv_obj.cast<CArray<float>>();
    require_shape(uv, {P, 2}, "uv");
    a.uv = uv.data();
  } else {
    rast = rast_obj.cast<CArray<float>>();
    uv_faces = uv_faces_obj.cast<CArray<int32_t>>();
    vtx_uv = vtx_uv_obj.cast<CArray<float>>();
    require_shape(rast, {P, 4}, "rast");
    require_shape(vtx_uv, {-1, 2}, "vtx_uv");
    a.rast = rast.data();
    a.uv_faces = checked_faces(uv_faces, vtx_uv.shape(0), "uv_faces");
    a.vtx_uv = vtx_uv.data();
    a.num_faces = uv_faces.shape(0);
  }
  CArray<float> cos;
  if (!cos_obj.is_none()) {
    cos = cos_obj.cast<CArray<float>>();
    require_shape(cos, {P}, "cos");
    a.cos = cos.mutable_data();
  }
  require_shape(idx, {-1}, "idx");
  const auto N = idx.shape(0);
  require_shape(coords, {N, 2}, "coords");
  require_shape(extra, {2, N}, "extra");
  CArray<float> normal;
  if (!normal_obj.is_none()) {
    normal = normal_obj.cast<CArray<float>>();
    require_shape(normal, {P, -1}, "normal");
    if (normal.shape(1) < 3) throw std::invalid_argument("normal: at least 3 channels");
    a.normal = normal.data();
    a.normal_stride = normal.shape(1);
  }
  CArray<float> vtx_normal;
  CArray<int32_t> normal_faces;
  if (!vtx_normal_obj.is_none()) {
    if (!normal_obj.is_none() || !a.rast) throw std::invalid_argument("vtx_normal: needs rast and no normal map");
    vtx_normal = vtx_normal_obj.cast<CArray<float>>();
    require_shape(vtx_normal, {-1, 3}, "vtx_normal");
    normal_faces = normal_faces_obj.cast<CArray<int32_t>>();
    a.normal_faces = checked_faces(normal_faces, vtx_normal.shape(0), "normal_faces");
    if (normal_faces.shape(0) != a.num_faces) throw std::invalid_argument("normal_faces: one row per face of uv_faces");
    a.vtx_normal = vtx_normal.data();
  }
  a.cos_thres = cos_thres;
  if (!a.normal && !a.vtx_normal && !a.cos) throw std::invalid_argument("cos: required without a normal");
  a.visible = visible.data();
  a.sketch = sketch.data();
  a.pixels = P;
  a.num_threads = num_threads < 1 ? 1 : num_threads;
  int64_t* ip = idx.mutable_data();
  float* cp = coords.mutable_data();
  float* ep = extra.mutable_data();
  py::gil_scoped_release release;
  return render_npu::select_samples(a, N, ip, cp, ep);
}

int64_t view_depth_binding(CArray<float> rast, CArray<int32_t> faces, CArray<float> z, CArray<float> depth,
                           CArray<uint8_t> hit, CArray<uint8_t> image, int num_threads) {
  require_shape(rast, {-1, 4}, "rast");
  const auto P = rast.shape(0);
  require_shape(z, {-1}, "z");
  render_npu::ViewDepthArgs a;
  a.faces = checked_faces(faces, z.shape(0), "faces");
  a.num_faces = faces.shape(0);
  require_shape(depth, {P}, "depth");
  require_shape(hit, {P}, "hit");
  require_shape(image, {P}, "image");
  a.rast = rast.data();
  a.z = z.data();
  a.pixels = P;
  a.num_threads = num_threads < 1 ? 1 : num_threads;
  float* dp = depth.mutable_data();
  uint8_t* hp = hit.mutable_data();
  uint8_t* ip = image.mutable_data();
  py::gil_scoped_release release;
  return render_npu::view_depth(a, dp, hp, ip);
}

void floats_to_u8_binding(CArray<float> x, float offset, float scale, CArray<uint8_t> out, int num_threads) {
  require_shape(x, {-1}, "x");
  require_shape(out, {x.shape(0)}, "out");
  const float* xp = x.data();
  uint8_t* op = out.mutable_data();
  const int64_t n = x.shape(0);
  py::gil_scoped_release release;
  render_npu::floats_to_u8(xp, n, offset, scale, op, num_threads < 1 ? 1 : num_threads);
}

void inpaint_bytes_binding(CArray<float> x, CArray<uint8_t> known, py::object region_obj, CArray<uint8_t> fill_value,
                           CArray<uint8_t> out, int num_threads) {
  require_shape(x, {-1, -1}, "x");
  const auto T = x.shape(0), C = x.shape(1);
  require_shape(known, {T}, "known");
  require_shape(fill_value, {C}, "fill_value");
  require_shape(out, {T, C}, "out");
  CArray<uint8_t> region;
  if (!region_obj.is_none()) {
    region = region_obj.cast<CArray<uint8_t>>();
    require_shape(region, {T}, "region");
  }
  const float* xp = x.data();
  const uint8_t *kp = known.data(), *rp = region_obj.is_none() ? nullptr : region.data(), *fp = fill_value.data();
  uint8_t* op = out.mutable_data();
  py::gil_scoped_release release;
  render_npu::inpaint_bytes(xp, kp, rp, fp, T, C, op, num_threads < 1 ? 1 : num_threads);
}

int64_t merge_views_binding(std::vector<CArray<float>> textures, std::vector<CArray<float>> weights,
                            CArray<float> out, CArray<float> trust, int num_threads) {
  require_shape(out, {-1, -1}, "out");
  const auto T = out.shape(0), C = out.shape(1);
  require_shape(trust, {T}, "trust");
  if (textures.size() != weights.size()) throw std::invalid_argument("weights: one per texture");
  std::vector<const float*> tp, wp;
  for (auto& t : textures) {
    require_shape(t, {T, C}, "textures");
    tp.push_back(t.data());
  }
  for (auto& w : weights) {
    require_shape(w, {T}, "weights");
    wp.push_back(w.data());
  }
  render_npu::MergeArgs a;
  a.textures = tp.data();
  a.weights = wp.data();
  a.views = int64_t(tp.size());
  a.texels = T;
  a.channels = C;
  a.num_threads = num_threads < 1 ? 1 : num_threads;
  float* op = out.mutable_data();
  float* rp = trust.mutable_data();
  py::gil_scoped_release release;
  return render_npu::merge_views(a, op, rp);
}
}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "render_npu compiled CPU kernels (rasterizer, mesh inpaint)";
  m.def("rasterize", &rasterize_binding, py::arg("pos"), py::arg("faces"), py::arg("height"),
        py::arg("width"), py::arg("opengl"), py::arg("cull_backfaces"), py::arg("num_threads"),
        py::arg("rast").noconvert(), py::arg("depth").noconvert(), py::arg("kernel") = "auto",
        py::arg("zero_filled") = false,
        "Rasterize into preallocated rast [B,H,W,4] and depth [B,H,W] (float32). Releases the GIL.\n"
        "kernel: 'auto' (widest the CPU supports), 'scalar' or 'avx2'; all give identical results.\n"
        "zero_filled: rast and depth are all zeros already, so empty pixels are not written.");
  m.def("rasterize_backward", &rasterize_backward_binding, py::arg("pos"), py::arg("faces"), py::arg("rast"),
        py::arg("opengl"), py::arg("grad_bary").none(true), py::arg("grad_depth").none(true),
        py::arg("num_threads"), py::arg("grad_pos").noconvert(), py::arg("float64_grads"),
        py::arg("kernel") = "auto",
        "Gradient of rasterize's barycentrics/depth w.r.t. pos (float64 [B,V,4]) into grad_pos (float64 [B,V,4]) "
        "from rast [B,H,W,4] (float32, id + 1 in channel 3) and grad_bary [B,H,W,3 or 4] (channels 0..2) / "
        "grad_depth [B,H,W] (float32, or float64 with float64_grads; None for no gradient). Deterministic for "
        "any num_threads; kernel 'auto', 'scalar' or 'avx2' give identical results. Releases the GIL.");
  m.def("rasterize_auto_kernel", &render_npu::rasterize_cpu_auto_kernel,
        "The tile kernel 'auto' picks on this CPU ('avx2' or 'scalar').");
  m.def("rasterize_release_cache", &render_npu::rasterize_cpu_release_cache,
        "Free the rasterizer's scratch memory kept between calls.");
  m.def("texture_forward", &texture_forward_binding, py::arg("levels"), py::arg("uv"), py::arg("uv_da"),
        py::arg("bias"), py::arg("filter"), py::arg("boundary"), py::arg("num_threads"), py::arg("out"));
  m.def("interpolate", &interpolate_binding, py::arg("attr"), py::arg("bary"), py::arg("ids"), py::arg("faces"),
        py::arg("batch"), py::arg("num_threads"), py::arg("out") = py::none(), py::arg("grad_out") = py::none(),
        py::arg("grad_attr") = py::none(), py::arg("grad_bary") = py::none(), py::arg("background") = py::none(),
        py::arg("db") = py::none(), py::arg("out_db") = py::none(),
        "Interpolate attr [Ba,V,C] (float32/float64, C-contiguous) at the barycentrics bary[..., :3] and ids "
        "(id + 1; float or int32) of B*H*W evenly strided pixels. Forward (grad_out None): writes out [BHW, C], "
        "returns -1 or the index of a pixel whose id is not an integer in [0, F]. Backward: writes grad_attr "
        "[Ba,V,C] and/or grad_bary [BHW, 3] (either may be None). background [C] (forward): written where id == 0 "
        "instead of zeros. db [..., 4] (du/dX, du/dY, dv/dX, dv/dY per pixel, attr's dtype; forward): also writes "
        "out_db [BHW, 2C] = (dA/dX, dA/dY) per channel, interleaved. Releases the GIL; threads never change results.");
  m.def("splat_bilinear", &splat_binding, py::arg("coords"), py::arg("values"), py::arg("index"), py::arg("extra"),
        py::arg("out").noconvert(), py::arg("out_extra"), py::arg("count"), py::arg("normalize"),
        py::arg("num_threads"),
        "Bilinear splat (csrc/splat/splat.h): sample n at coords[n] (row, col fractions of H-1, W-1) adds "
        "values[index[n] if index else n] [Cv] (float32, or uint8 read as b / 255) into out [H,W,Cv], extra[:, n] into out_extra [E,H,W] and its "
        "weight into count [H,W] (float32; index int64 [N], extra float32 [E,N], count: each optional). out, out_extra "
        "and count must be zero-filled: texels no sample reaches are not written. normalize: then divide by count where > 0. Releases the GIL; threads never change results.");
  m.def("select_samples", &select_samples_binding, py::arg("visible").noconvert(), py::arg("sketch").noconvert(),
        py::arg("uv").noconvert(), py::arg("cos").noconvert(), py::arg("idx").noconvert(),
        py::arg("coords").noconvert(), py::arg("extra").noconvert(), py::arg("num_threads"),
        py::arg("rast") = py::none(), py::arg("uv_faces") = py::none(), py::arg("vtx_uv") = py::none(),
        py::arg("normal") = py::none(), py::arg("cos_thres") = 0.0f, py::arg("vtx_normal") = py::none(),
        py::arg("normal_faces") = py::none(),
        "The baking pixels of one view (csrc/bake/bake.h): visible, sketch uint8 [P], uv float32 [P, 2] (or None: "
        "interpolated at the visible pixels from rast float32 [P, 4], uv_faces int32 [F, 3], vtx_uv float32 [V, 2]; "
        "-1 for a visible pixel without a valid id). The cosine: computed at the visible pixels as MeshRender does "
        "(0 below cos_thres) from normal float32 [P, >= 3], or from vtx_normal float32 [V', 3] interpolated through "
        "normal_faces int32 [F, 3] (needs rast); then written into cos float32 [P] if given (0 where not visible). "
        "Without a normal, read from cos. Writes idx int64 [N], coords float32 [N, 2] (uv flipped), extra float32 "
        "[2, N] (cos, sketch; must be zero-filled) when N is the visible count. Returns the count found.");
  m.def("view_depth", &view_depth_binding, py::arg("rast").noconvert(), py::arg("faces").noconvert(),
        py::arg("z").noconvert(), py::arg("depth").noconvert(), py::arg("hit").noconvert(),
        py::arg("image").noconvert(), py::arg("num_threads") = 1,
        "MeshRender.back_project's depth map and uint8 depth image of one view (csrc/bake/bake.h): rast float32 "
        "[P, 4], faces int32 [F, 3], z float32 [V]; writes depth float32 [P] (0 off the mesh), hit uint8 [P] and "
        "image uint8 [P]. Returns the hit count (0: image not written), -1 (a NaN depth) or -2 (a bad id).");
  m.def("floats_to_u8", &floats_to_u8_binding, py::arg("x").noconvert(), py::arg("offset"), py::arg("scale"),
        py::arg("out").noconvert(), py::arg("num_threads") = 1,
        "MeshRender's float map to image bytes (csrc/bake/bake.h): out uint8 [N] = uint8(((x + offset) * scale) * 255) "
        "in float32 for x float32 [N], truncated as numpy's astype(np.uint8).");
  m.def("inpaint_bytes", &inpaint_bytes_binding, py::arg("x").noconvert(), py::arg("known").noconvert(),
        py::arg("region").noconvert(), py::arg("fill_value").noconvert(), py::arg("out").noconvert(),
        py::arg("num_threads") = 1,
        "The accelerated uv_inpaint's uint8 texture (csrc/bake/bake.h): x float32 [T, C]; known, region uint8 [T] "
        "(region may be None); fill_value uint8 [C]; writes out uint8 [T, C].");
  m.def("merge_views", &merge_views_binding, py::arg("textures"), py::arg("weights"), py::arg("out").noconvert(),
        py::arg("trust").noconvert(), py::arg("num_threads"),
        "MeshRender.fast_bake_texture's weighted merge (csrc/bake/bake.h): textures V x float32 [T, C], weights "
        "V x float32 [T] into out [T, C] and trust [T] (overwritten). Returns the number of views used.");
  m.def("mesh_vertex_inpaint", &mesh_vertex_inpaint_binding, py::arg("texture"), py::arg("mask"),
        py::arg("vtx_pos"), py::arg("vtx_uv"), py::arg("pos_idx"), py::arg("uv_idx"), py::arg("method"),
        py::arg("out_texture"), py::arg("out_mask"),
        "Hunyuan3D-compatible meshVerticeInpaint (method 0 = smooth, 1 = forward) into preallocated "
        "out_texture [H,W,C] float32 / out_mask [H,W] uint8. Returns (iterations, list_entries, "
        "last_uncolored, colored_vertices). Releases the GIL. Validate inputs in Python first "
        "(render_npu.inpaint).");
  m.def("harmonic_fill", &harmonic_fill_binding, py::arg("texture").noconvert(), py::arg("known").noconvert(),
        py::arg("domain").none(true), py::arg("iters"), py::arg("num_threads"), py::arg("kernel") = "auto",
        "texgen.inpaint.harmonic_fill's membrane fill (csrc/inpaint/harmonic.h), in place: texture float32 "
        "[H,W,C] (H, W >= 2; 0 on the unknown texels), known uint8 [H,W], domain uint8 [H,W] or None "
        "(everything). Returns the number of texels filled. kernel: 'auto' (FMA where the CPU has it) or "
        "'portable'; both give the same bits. Releases the GIL; threads never change results.");
  m.def("ascendc_host_fine_raster", &ascendc_host_fine_raster_binding,
      py::arg("coords"), py::arg("tiles"), py::arg("lists"), py::arg("rec_i"), py::arg("rec_f"), py::arg("out"),
      py::arg("block_dim") = 8, py::arg("num_threads") = 1, py::arg("device_rounding") = false,
      "Run the AscendC fine-raster kernel (ascendc_kernels/fine_raster_kernel.h) on the host against the "
      "emulated AscendC API: inputs in the kernel's format (ascendc_kernels/README.md), out [num_tiles, 1280] "
      "float32 fully written. device_rounding: fused Axpy and Div one ulp off (the device's documented "
      "bounds) instead of IEEE host rounding. Returns the emulator's instruction statistics. Releases the GIL.");
}
