"""The portable tile rasterizer (``backend="torch"``): the contract in pure torch tensor ops.

It runs unchanged on Ascend NPUs (through ``torch_npu``, never imported here), CUDA and CPU:
nothing in it is device specific, every tensor lives on the input's device, there is no
float64, and the number of torch ops per call does not depend on the number of faces or the
resolution except through chunk loops whose length is (work / chunk size), the chunk size
following ``memory_budget``. See docs/torch_backend.md for the design and measurements.

Pipeline (all faces at once: no Python loop over faces, tiles or pixels):

1. Setup, float32, bit-identical to :mod:`render_npu.backends.reference` (the same operations in the same
   order): per-vertex projection and 1/256-pixel snapping; the few triangles that cross a clip
   plane are clipped by a vectorized Sutherland-Hodgman (six planes, polygons of up to
   ``_CLIP_CAP`` vertices) and fanned into pieces that keep the parent's id. Each piece, its
   vertices in a canonical order (so coincident triangles get bitwise equal depths), gets exact
   integer edge equations (orientation normalised, top-left bias), a float32 depth gradient and
   perspective barycentric coefficients, and a rank: its position in (batch, face, fan) order,
   so that a lower rank means a lower triangle id.
2. Binning into tiles: each piece's pixel bounding box is cut into S x S pixel tiles anchored at
   the box's corner ("stamps"; S from ``setup.stamp_sizes(device)`` per piece by a cost model, or fixed in
   static mode). Expanding (piece, stamp) pairs is one ``repeat_interleave``.
3. Raster, per chunk of stamps: an edge function is separable on a stamp,
   ``E(lx, ly) = row[ly] - col[lx]``, so the coverage of all S*S pixels is one broadcast
   comparison of two small tables per edge; depth likewise. Every covered pixel gets the int64
   key ``bits(float32 depth') << 32 | rank``; one ``scatter_reduce(amin)`` into a per-pixel key
   buffer resolves visibility: nearest depth wins, lowest id on equal depth.
4. Resolve, per chunk of covered pixels: the winning piece's exact edge values at the pixel give
   the perspective-correct barycentrics and the depth.

Exactness: coverage is exact on the 1/256 grid on every device. ``edge_arith="int64"`` (CPU,
CUDA) evaluates edge functions in int64; ``edge_arith="float32"`` (the default elsewhere: Ascend
NPUs are slow at int64) evaluates them per pixel in float32 with an exact hi/lo split of
tile-relative integers (:func:`_coverage_float`); both give identical coverage. Depth for the
visibility test is float32 (within ~2e-7 of the reference's float64 plane for ordinary
triangles), so ids can differ from the reference only where two surfaces are that close in
depth, which the contract's agreement rule allows.

Modules, by stage: :mod:`.setup` (options, tables, triangle setup), :mod:`.raster` (binning, the
stamp raster, the per-pixel resolve), :mod:`.driver` (chunk loops, visibility merge, entry
points). Test instrumentation (op and sync counts, peak memory) is in :mod:`render_npu.testing`.
"""
from .driver import coverage_counts, rasterize
from .setup import DEFAULT_MEMORY_BUDGET, MIN_MEMORY_BUDGET, default_edge_arith

__all__ = ["rasterize", "coverage_counts", "default_edge_arith", "DEFAULT_MEMORY_BUDGET", "MIN_MEMORY_BUDGET"]
