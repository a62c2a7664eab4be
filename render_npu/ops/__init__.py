"""Differentiable image-space ops behind the nvdiffrast front (render_npu.nvdiffrast), written in
torch ops so they run on any device (CPU, CUDA, NPU): pixel derivatives of barycentrics and
attributes (:mod:`.derivatives`), texture sampling with mipmaps (:mod:`.texture`), analytic
silhouette antialiasing (:mod:`.antialias`) and depth peeling (:mod:`.peel`)."""
