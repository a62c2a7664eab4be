"""The compiled module under test is the one the run means: ``RENDER_NPU_EXPECT_EXT_DIR`` (set by
scripts/sanitize_tests.sh for its sanitized build), else ``RENDER_NPU_EXT_DIR`` (a developer's
build folder), else the copy installed inside the package (tests/conftest.py)."""
import os

import render_npu


def test_expected_compiled_module_is_loaded(ext):
    expect = (os.environ.get("RENDER_NPU_EXPECT_EXT_DIR") or os.environ.get("RENDER_NPU_EXT_DIR")
              or os.path.dirname(render_npu.__file__))
    where = os.path.realpath(ext.__file__)
    assert where.startswith(os.path.realpath(expect) + os.sep), f"_C loaded from {where}, expected under {expect}"
