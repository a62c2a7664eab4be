"""Test and benchmark instrumentation through ``TorchDispatchMode``: op and host-sync counts, peak
tensor memory. Device independent (it sees dispatched aten ops, not a device's allocator)."""
from __future__ import annotations

from collections import Counter
from typing import Dict, NamedTuple, Tuple

import torch

# aten ops whose result (a value, or an output size that depends on the data) must reach the host:
# on an accelerator each one stalls the stream until the work queued before it has run
SYNC_OPS = ("_local_scalar_dense", "nonzero", "item", "is_nonzero", "equal", "allclose", "_assert_async",
            "masked_select", "_unique", "_unique2", "unique_dim", "unique_consecutive", "bincount", "tolist")
# ops that read only the addressed elements of their first input (not all of it)
_GATHER_OPS = frozenset({"gather", "index_select", "index", "take"})
# in-place scatters: read the index and the source, read-modify-write the addressed elements
_SCATTER_OPS = frozenset({"scatter_", "scatter_reduce_", "scatter_add_", "index_copy_", "index_add_", "index_put_",
                          "index_fill_", "masked_scatter_"})


# aten ops that only make views or read metadata: no kernel launch on any device
VIEW_OPS = frozenset({"view", "_unsafe_view", "reshape", "_reshape_alias", "slice", "select", "unsqueeze", "squeeze",
                      "expand", "as_strided", "t", "transpose", "permute", "detach", "alias", "unbind", "split",
                      "split_with_sizes", "narrow", "view_as", "expand_as", "lift_fresh"})


class OpCounts(NamedTuple):
    total: int  # aten ops dispatched, views included
    kernels: int  # ops that do work (total minus views): kernel launches on an accelerator
    syncs: int  # ops that copy a value to the host (device -> host synchronisation)
    by_name: Counter
    bytes_read: int = 0  # memory traffic of the kernels (an estimate, see op_traffic)
    bytes_written: int = 0
    largest: int = 0  # bytes of the largest tensor one op made (the largest temporary)
    traffic: tuple = ()  # (name, bytes read, bytes written) per kernel, in dispatch order


def _nbytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def op_traffic(name: str, args, kwargs, out) -> Tuple[int, int]:
    """(bytes read, bytes written) of one dispatched op, from its tensor arguments and results:
    every tensor input is read whole and every output written whole, except gathers (read the
    index and as many elements as they write) and in-place scatters (read the index and the
    source, read and write as many destination elements as the source has). Device independent;
    what a bandwidth-bound kernel moves through memory, caches ignored."""
    tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (list, tuple)):
            tensors += [x for x in a if isinstance(x, torch.Tensor)]
    outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(o, torch.Tensor)]
    written = sum(_nbytes(o) for o in outs)
    if name in _GATHER_OPS:
        return sum(_nbytes(t) for t in tensors[1:]) + written, written
    if name in _SCATTER_OPS and tensors:
        src = sum(_nbytes(t) for t in tensors[1:])
        moved = _nbytes(tensors[-1]) if len(tensors) > 1 else 0
        return src + moved, moved
    if name.endswith("_") and tensors:  # other in-place ops: the first argument is the output
        return sum(_nbytes(t) for t in tensors), _nbytes(tensors[0])
    return sum(_nbytes(t) for t in tensors), written


def _is_host_copy(name: str, args, kwargs) -> bool:
    """An explicit copy to the host: ``_to_copy(device=cpu)`` (what :func:`_host` does), or
    ``copy_`` from a non-CPU tensor into a CPU one."""
    if name == "_to_copy":
        dev = kwargs.get("device")
        return dev is not None and torch.device(dev).type == "cpu"
    if name == "repeat_interleave":  # without output_size it computes the size on the host
        return kwargs.get("output_size") is None
    if name == "copy_" and len(args) >= 2 and isinstance(args[1], torch.Tensor):
        return args[0].device.type == "cpu" and args[1].device.type != "cpu"
    return False


def count_ops(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and count the aten ops it dispatches.

    Returns ``(result, OpCounts)``: ``total`` counts every dispatched op, views included;
    ``kernels`` leaves out views and metadata ops (what launches a kernel on an accelerator);
    ``syncs`` counts the ops that force a device -> host transfer: ``aten.nonzero``,
    ``aten._local_scalar_dense`` (behind ``.item()``, ``int(t)``), explicit copies to the host,
    the other ops of :data:`SYNC_OPS`, ``repeat_interleave`` without ``output_size``;
    ``bytes_read``, ``bytes_written``, ``traffic``: see :func:`op_traffic`; ``largest``: the
    largest tensor an op returned (out-of-place ops).
    Usage from a benchmark::

        from render_npu.testing import count_ops
        (rast, depth), n = count_ops(render_npu.rasterize, res, faces, pos, backend="torch")
        print(n.total, n.kernels, n.syncs)
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    names: Counter = Counter()
    syncs = [0]
    traffic = []
    largest = [0]

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            names[name] += 1
            if name in SYNC_OPS or _is_host_copy(name, args, kwargs):
                syncs[0] += 1
            out = func(*args, **kwargs)
            if name not in VIEW_OPS:
                r, w = op_traffic(name, args, kwargs, out)
                traffic.append((name, r, w))
                for o in (out if isinstance(out, (tuple, list)) else (out,)):
                    if isinstance(o, torch.Tensor) and not name.endswith("_"):
                        largest[0] = max(largest[0], _nbytes(o))
            return out

    with _Count():
        result = fn(*args, **kwargs)
    total = sum(names.values())
    return result, OpCounts(total, total - sum(v for k, v in names.items() if k in VIEW_OPS), syncs[0], names,
                            sum(t[1] for t in traffic), sum(t[2] for t in traffic), largest[0], tuple(traffic))


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
