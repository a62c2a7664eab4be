"""Instrumentation for tests and benchmarks (not used by the library itself)."""
from .dispatch import SYNC_OPS, VIEW_OPS, OpCounts, count_ops, op_traffic, peak_tensor_bytes

__all__ = ["SYNC_OPS", "VIEW_OPS", "OpCounts", "count_ops", "op_traffic", "peak_tensor_bytes"]
