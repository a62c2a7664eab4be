"""Test and benchmark instrumentation through ``TorchDispatchMode``: op and host-sync counts, peak
tensor memory. Device independent (it sees dispatched aten ops, not a device's allocator)."""
from __future__ import annotations

from collections import Counter
from typing import Dict, NamedTuple

import torch

# ----------------------------------------------------------------------------- instrumentation

SYNC_OPS = ("_local_scalar_dense", "nonzero", "item", "is_nonzero", "equal", "allclose", "_assert_async")


# aten ops that only make views or read metadata: no kernel launch on any device
VIEW_OPS = frozenset({"view", "_unsafe_view", "reshape", "_reshape_alias", "slice", "select", "unsqueeze", "squeeze",
                      "expand", "as_strided", "t", "transpose", "permute", "detach", "alias", "unbind", "split",
                      "split_with_sizes", "narrow", "view_as", "expand_as", "lift_fresh"})


class OpCounts(NamedTuple):
    total: int  # aten ops dispatched, views included
    kernels: int  # ops that do work (total minus views): kernel launches on an accelerator
    syncs: int  # ops that copy a value to the host (device -> host synchronisation)
    by_name: Counter


def _is_host_copy(name: str, args, kwargs) -> bool:
    """An explicit copy to the host: ``_to_copy(device=cpu)`` (what :func:`_host` does), or
    ``copy_`` from a non-CPU tensor into a CPU one."""
    if name == "_to_copy":
        dev = kwargs.get("device")
        return dev is not None and torch.device(dev).type == "cpu"
    if name == "copy_" and len(args) >= 2 and isinstance(args[1], torch.Tensor):
        return args[0].device.type == "cpu" and args[1].device.type != "cpu"
    return False


def count_ops(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and count the aten ops it dispatches.

    Returns ``(result, OpCounts)``: ``total`` counts every dispatched op, views included;
    ``kernels`` leaves out views and metadata ops (what launches a kernel on an accelerator);
    ``syncs`` counts the ops that force a device -> host transfer: ``aten.nonzero``,
    ``aten._local_scalar_dense`` (behind ``.item()``, ``int(t)``), explicit copies to the host.
    Usage from a benchmark::

        from render_npu import torch_backend
        (rast, depth), n = torch_backend.count_ops(render_npu.rasterize, res, faces, pos, backend="torch")
        print(n.total, n.kernels, n.syncs)
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    names: Counter = Counter()
    syncs = [0]

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            names[name] += 1
            if name in SYNC_OPS or _is_host_copy(name, args, kwargs):
                syncs[0] += 1
            return func(*args, **kwargs)

    with _Count():
        result = fn(*args, **kwargs)
    total = sum(names.values())
    return result, OpCounts(total, total - sum(v for k, v in names.items() if k in VIEW_OPS), syncs[0], names)


def peak_tensor_bytes(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and measure the peak bytes of tensor storage it holds alive.

    Returns ``(result, peak_bytes)``: the maximum, over the call, of the total size of storages
    created by the ops it dispatched and still alive (its outputs included; inputs and tensors
    made before the call excluded). Exact and device independent (it sees storages, not the
    allocator), unlike RSS or ``max_memory_allocated``, which include allocator caching.
    """
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode

    live: Dict[int, int] = {}
    state = {"cur": 0, "peak": 0}

    def release(key: int) -> None:
        state["cur"] -= live.pop(key, 0)

    class _Track(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for o in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(o, torch.Tensor):
                    st = o.untyped_storage()
                    key = id(st)
                    if key not in live and st.nbytes() > 0:
                        live[key] = st.nbytes()
                        state["cur"] += st.nbytes()
                        state["peak"] = max(state["peak"], state["cur"])
                        weakref.finalize(st, release, key)
            return out

    with _Track():
        result = fn(*args, **kwargs)
    return result, state["peak"]
