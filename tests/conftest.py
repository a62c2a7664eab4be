"""Test-suite setup shared by every test module.

* **The installed package is what gets tested.** ``python -m pytest`` puts the working directory
  on ``sys.path`` and plain ``pytest`` does not, so from the project root the two would import
  different ``render_npu``s (the source tree has no ``_C``). This file takes the project root off
  ``sys.path`` before anything imports the package, so both runners test the installed wheel. A
  developer who means to test the source tree against a build folder says so explicitly with
  ``RENDER_NPU_EXT_DIR=build/dev PYTHONPATH=.`` (README, "Development").
* **The header says what was tested**: where ``render_npu`` and ``texgen`` came from, which
  ``_C`` was loaded, and every backend's availability.
* **Nothing of this project may go missing quietly.** ``@pytest.mark.compiled("name", ...)``
  marks a test that needs those functions of ``render_npu._C``. Without them it skips, with the
  reason, on a developer's machine; with ``RENDER_NPU_TEST_STRICT=1`` (set by ``.ci/run``) it
  fails, and so does any backend that is compiled here but unavailable.
* Shared fixtures: ``golden`` (stored golden scenes), ``ext`` (the compiled module),
  ``texgen_backend`` (``TEXGEN_TEST_BACKEND``, default ``auto``; also ``TEXGEN_BACKEND`` for
  module-level use).
"""
from __future__ import annotations

import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
STRICT = os.environ.get("RENDER_NPU_TEST_STRICT", "") not in ("", "0")
SOURCE_MODE = bool(os.environ.get("RENDER_NPU_EXT_DIR"))  # testing the source tree against a build


def _is_root(entry: str) -> bool:
    try:
        return os.path.realpath(entry or os.getcwd()) == os.path.realpath(ROOT)
    except OSError:
        return False


if not SOURCE_MODE:
    sys.path[:] = [p for p in sys.path if not _is_root(p)]
    for mod in [m for m in sys.modules if m.split(".")[0] in ("render_npu", "texgen")]:
        del sys.modules[mod]  # imported from the source tree before this file ran
if TESTS not in sys.path:  # scenes.py, agreement.py: plain modules beside the tests
    sys.path.insert(0, TESTS)

import render_npu  # noqa: E402
from agreement import HARDWARE_BACKENDS  # noqa: E402
from render_npu import _ext  # noqa: E402


def _origin(module) -> str:
    """Where a package was imported from, marked when it is this checkout's source folder (a venv
    inside the checkout, as .ci/run makes, is an installed copy)."""
    path = os.path.dirname(os.path.realpath(module.__file__))
    source = os.path.join(os.path.realpath(ROOT), module.__name__.split(".")[0])
    return path + ("  (SOURCE TREE)" if path == source else "")


def pytest_report_header(config):
    import texgen

    ext = _ext.get()
    lines = [f"render_npu {render_npu.__version__} from {_origin(render_npu)}",
             f"render_npu._C: {os.path.realpath(ext.__file__) if ext is not None else 'MISSING: ' + _ext.reason()}",
             f"texgen from {_origin(texgen)}",
             f"strict (RENDER_NPU_TEST_STRICT): {STRICT}"]
    for name, (ok, why) in render_npu.backends().items():
        lines.append(f"backend {name:13s} {'available' if ok else 'UNAVAILABLE'}: {why}")
    return lines


def pytest_sessionstart(session):
    if not STRICT:
        return
    problems = []
    if _ext.get() is None:
        problems.append(f"render_npu._C: {_ext.reason()}")
    for name, (ok, why) in render_npu.backends().items():
        if not ok and name not in HARDWARE_BACKENDS:
            problems.append(f"backend {name!r}: {why}")
    if not SOURCE_MODE and _origin(render_npu).endswith("(SOURCE TREE)"):
        problems.append("render_npu was imported from the source tree, not the installed package")
    if problems:
        raise pytest.UsageError("RENDER_NPU_TEST_STRICT: a part of render_npu is missing:\n  "
                                + "\n  ".join(problems))


def missing(reason: str):
    """Skip for a missing part of this project, or fail under RENDER_NPU_TEST_STRICT."""
    if STRICT:
        pytest.fail(f"RENDER_NPU_TEST_STRICT: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config):
    config.addinivalue_line("markers", "compiled(*names): needs these functions of render_npu._C")
    config.addinivalue_line("markers", "unavailable_backend(reason): a backend of this project is missing")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("unavailable_backend"):
        missing(mark.args[0])
    for mark in item.iter_markers("compiled"):
        ext = _ext.get()
        if ext is None:
            missing(f"render_npu._C unavailable: {_ext.reason()}")
        absent = [n for n in mark.args if not hasattr(ext, n)]
        if absent:
            missing(f"render_npu._C at {ext.__file__} lacks {absent} (an old build?)")


@pytest.fixture
def ext():
    """The compiled module (skips, or fails under strict, when it is missing)."""
    module = _ext.get()
    if module is None:
        missing(f"render_npu._C unavailable: {_ext.reason()}")
    return module


#: The rasterizer backend the texgen tests run with (``TEXGEN_TEST_BACKEND``, default ``auto``).
TEXGEN_BACKEND = os.environ.get("TEXGEN_TEST_BACKEND", "auto")


@pytest.fixture(scope="session")
def texgen_backend() -> str:
    return TEXGEN_BACKEND


@pytest.fixture(scope="session")
def golden():
    """``golden(name)``: the stored golden scene (see tests/scenes.py)."""
    import scenes

    return scenes.load_golden
