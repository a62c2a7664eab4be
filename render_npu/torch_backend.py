"""Deprecated location of the torch backend: a thin re-export of :mod:`render_npu.backends.torch`
(setup, raster, driver) and :mod:`render_npu.testing` (op counts, peak memory), kept so that code
importing ``render_npu.torch_backend`` keeps working while the package split lands."""
from .backends.torch import driver as _driver
from .backends.torch import raster as _raster
from .backends.torch import setup as _setup_mod
from .testing import dispatch as _dispatch

for _m in (_setup_mod, _raster, _driver, _dispatch):
    globals().update({_k: _v for _k, _v in vars(_m).items() if not _k.startswith("__")})
del _m
