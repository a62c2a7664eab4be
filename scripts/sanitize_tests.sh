#!/usr/bin/env bash
# Build render_npu._C with AddressSanitizer + UndefinedBehaviorSanitizer (CMake option
# RENDER_NPU_SANITIZE=ON) into build/asan, then run the golden, property, fuzz and thread tests
# against that build, importing the package from the source tree. See docs/robustness.md.
#
#   bash scripts/sanitize_tests.sh [extra pytest args...]
#
# Environment:
#   PYTHON                    interpreter to use (default: `python` of the active venv, else python3)
#   SANITIZE_BUILD_DIR        build folder (default: build/asan)
#   SANITIZE_TESTS            test files to run (default: the existing ones among the list below)
#   RENDER_NPU_FUZZ_EXAMPLES  hypothesis examples per fuzz test (default here: 25)
#
# Fails loudly when: the sanitizer build fails; the built module is not linked against libasan;
# the tests would import some other _C (checked twice: here, and by tests/test_ext_dir.py through
# RENDER_NPU_EXPECT_EXT_DIR); any sanitizer report (abort_on_error / halt_on_error); any test failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
BUILD_DIR="${SANITIZE_BUILD_DIR:-build/asan}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac

say() { printf '[sanitize] %s\n' "$*" >&2; }
die() { printf '[sanitize] FAILED: %s\n' "$*" >&2; exit 1; }

# ---- tools: cmake, ninja, pybind11 (the wheel build gets them in an isolated env, we need them here)
if ! command -v cmake >/dev/null 2>&1 || ! command -v ninja >/dev/null 2>&1 \
   || ! "$PYTHON" -m pybind11 --cmakedir >/dev/null 2>&1; then
  say "installing cmake/ninja/pybind11 into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
  "$PYTHON" -m pip install -q cmake ninja "pybind11>=2.11" || die "could not install cmake/ninja/pybind11"
  PATH="$(dirname "$PYTHON"):$PATH"
fi
PYBIND11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" || die "python -m pybind11 --cmakedir"

CXX_COMPILER="${CXX:-g++}"
LIBASAN="$("$CXX_COMPILER" -print-file-name=libasan.so)"
LIBUBSAN="$("$CXX_COMPILER" -print-file-name=libubsan.so)"
[ -f "$LIBASAN" ] || die "$CXX_COMPILER has no libasan.so (got '$LIBASAN'); install the compiler's sanitizer runtime"
[ -f "$LIBUBSAN" ] || die "$CXX_COMPILER has no libubsan.so (got '$LIBUBSAN')"

# ---- build
mkdir -p "$BUILD_DIR"
say "configuring $BUILD_DIR"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$CXX_COMPILER" \
  -DRENDER_NPU_SANITIZE=ON \
  -Dpybind11_DIR="$PYBIND11_DIR" \
  -DPython_EXECUTABLE="$PYTHON" >"$BUILD_DIR/configure.log" 2>&1 \
  || { cat "$BUILD_DIR/configure.log" >&2; die "cmake configure"; }
say "building (log: $BUILD_DIR/build.log)"
cmake --build "$BUILD_DIR" --target _C >"$BUILD_DIR/build.log" 2>&1 \
  || { tail -n 60 "$BUILD_DIR/build.log" >&2; die "sanitizer build"; }

SO="$(ls "$BUILD_DIR"/_C*.so 2>/dev/null | head -n 1)"
[ -n "$SO" ] || die "no _C*.so in $BUILD_DIR after the build"
LDD="$(ldd "$SO")"  # (not piped into grep -q: SIGPIPE + pipefail would read as "not linked")
grep -q libasan <<<"$LDD" || die "$SO is not linked against libasan: RENDER_NPU_SANITIZE had no effect"
grep -q libubsan <<<"$LDD" || die "$SO is not linked against libubsan: RENDER_NPU_SANITIZE had no effect"

# ---- run environment
export RENDER_NPU_EXT_DIR="$BUILD_DIR"
export RENDER_NPU_EXPECT_EXT_DIR="$BUILD_DIR"
export RENDER_NPU_TEST_STRICT=1  # a missing compiled part fails (tests/conftest.py)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# CPython and torch are not instrumented: no leak checking (CPython's arenas look like leaks),
# and no container-overflow reports from uninstrumented code. Everything else aborts the process.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0:alloc_dealloc_mismatch=0:strict_init_order=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export RENDER_NPU_FUZZ_EXAMPLES="${RENDER_NPU_FUZZ_EXAMPLES:-25}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
PRELOAD="$LIBASAN:$LIBUBSAN"

# ---- loud check that the sanitized module is the one the tests will use, and ASan is live
LD_PRELOAD="$PRELOAD" "$PYTHON" - "$BUILD_DIR" <<'EOF' || die "the sanitizer build did not load (see above)"
import os, sys
build = os.path.realpath(sys.argv[1])
import render_npu, render_npu._ext as ext
assert os.path.realpath(os.path.dirname(render_npu.__file__)) == os.path.realpath(os.path.join(os.getcwd(), "render_npu")), \
    f"render_npu imported from {render_npu.__file__}, not from the source tree"
m = ext.get()
assert m is not None, f"compiled module did not load: {ext.reason()}"
where = os.path.realpath(m.__file__)
assert where.startswith(build + os.sep), f"_C loaded from {where}, expected under {build}"
maps = open("/proc/self/maps").read()
assert "libasan" in maps and "libubsan" in maps, "ASan/UBSan runtimes are not mapped into the process"
print(f"[sanitize] using {where} (ASan+UBSan live); backends: "
      f"{ {k: v[0] for k, v in render_npu.backends().items()} }", file=sys.stderr)
EOF

# ---- tests
if [ -n "${SANITIZE_TESTS:-}" ]; then
  read -r -a TESTS <<<"$SANITIZE_TESTS"
else
  TESTS=()
  for f in tests/test_ext_dir.py tests/test_memory_guard.py tests/test_golden*.py tests/test_propert*.py tests/test_fuzz.py \
           tests/test_threads.py tests/test_cpu*.py tests/test_inpaint*.py tests/test_mesh_processor*.py tests/test_ascendc_host.py \
           tests/test_interpolate.py tests/test_hunyuan3d.py; do
    [ -f "$f" ] && TESTS+=("$f")
  done
fi
[ "${#TESTS[@]}" -gt 0 ] || die "no test files selected"
say "running: ${TESTS[*]}"
start=$(date +%s)
set +e
LD_PRELOAD="$PRELOAD" "$PYTHON" -m pytest -q -p no:cacheprovider -m "not slow" "${TESTS[@]}" "$@"
rc=$?
set -e
say "pytest exit status $rc after $(( $(date +%s) - start )) s"
case "$rc" in
  0) say "clean: no sanitizer reports, all selected tests passed" ;;
  5) die "pytest collected no tests" ;;
  134|133|139) die "the test process died (status $rc): a sanitizer report (look for 'ERROR: AddressSanitizer' or 'runtime error:' above) or a crash" ;;
  1) die "tests failed (no sanitizer report: those abort the process); see the failures above" ;;
  *) die "pytest exit status $rc" ;;
esac
