"""Instrumentation for tests, benchmarks and texgen batch's per-job report (not used by the
rasterizer itself)."""
from .dispatch import SYNC_OPS, VIEW_OPS, OpCounts, count_ops, op_traffic, peak_tensor_bytes
from .memory import reset_peak_rss, status_kb

__all__ = ["SYNC_OPS", "VIEW_OPS", "OpCounts", "count_ops", "op_traffic", "peak_tensor_bytes", "reset_peak_rss",
           "status_kb"]
