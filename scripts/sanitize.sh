#!/usr/bin/env bash
# Runs the tests under sanitizers:
#  (a) AddressSanitizer + UndefinedBehaviorSanitizer (g++): every test that does not need
#      LibTorch or Faiss, i.e. the library tests, the CUDA backend's per-element logic on the
#      CPU, and the command line's loading code on bad input (test_cli_bad_input, with OpenCV).
#  (b) ThreadSanitizer (clang++ with LLVM's libomp and its Archer tool, which tells TSan about
#      OpenMP's synchronisation; libgomp's would be reported as races): the tests that score,
#      probe and draw projections from several std::threads and OpenMP threads at once.
#
#   scripts/sanitize.sh [asan|tsan]...     (default: both)
#
# Environment: AMQ_SANITIZE_BUILD (folder for the build trees, default build-sanitize),
# AMQ_SANITIZE_JOBS (build jobs, default nproc). Exits non-zero on any sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${AMQ_SANITIZE_BUILD:-$root/build-sanitize}
jobs=${AMQ_SANITIZE_JOBS:-$(nproc)}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(asan tsan)
common=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DAMQ_BUILD_EXAMPLES=OFF -DAMQ_BUILD_BENCHMARKS=OFF
        -DAMQ_ENABLE_CUDA=OFF -DAMQ_BUILD_TESTS=ON)

# The tests run with one BLAS thread: OpenBLAS is not instrumented, and its own thread pool is
# not what these runs check. OpenMP keeps its threads (at least 4, to interleave).
export OPENBLAS_NUM_THREADS=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

for step in "${steps[@]}"; do
  case $step in
    asan)
      echo "=== ASan + UBSan: all tests without LibTorch ($SECONDS s)"
      cmake -S "$root" -B "$build/asan" "${common[@]}" -DCMAKE_CXX_COMPILER=g++ \
        -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror -fsanitize=address,undefined \
-fno-omit-frame-pointer -fno-sanitize-recover=all" >/dev/null
      cmake --build "$build/asan" -j"$jobs"
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$build/asan" --output-on-failure -j"$jobs"
      ;;
    tsan)
      echo "=== TSan: threaded tests with clang and libomp ($SECONDS s)"
      archer=$(clang++-14 -print-file-name=libarcher.so 2>/dev/null || true)
      [ -f "$archer" ] || archer=/usr/lib/llvm-14/lib/libarcher.so
      [ -f "$archer" ] || { echo "libarcher.so (LLVM OpenMP's TSan tool) not found"; exit 1; }
      tsan_tests=(test_amq_scorer test_bloom_filter test_lsh_encoder test_structured_projection)
      cmake -S "$root" -B "$build/tsan" "${common[@]}" -DCMAKE_CXX_COMPILER=clang++-14 \
        -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror -fsanitize=thread -fno-omit-frame-pointer" \
        >/dev/null
      cmake --build "$build/tsan" -j"$jobs" --target "${tsan_tests[@]}"
      for test in "${tsan_tests[@]}"; do
        echo "--- $test"
        OMP_TOOL_LIBRARIES=$archer \
        TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1 \
          "$build/tsan/tests/$test"
      done
      ;;
    *)
      echo "unknown step '$step' (expected asan or tsan)"
      exit 2
      ;;
  esac
done
echo "=== sanitizers passed ($SECONDS s)"
