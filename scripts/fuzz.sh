#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan, and runs each for N seconds
# (default 180) from a copy of its committed seed corpus.
#
#   scripts/fuzz.sh [seconds] [target...]      targets: model_loader image_loading (default both)
#
# Environment: AMQ_FUZZ_BUILD (build folder, default build-fuzz), AMQ_FUZZ_JOBS (build jobs,
# default 2), CXX (default clang++-14 or clang++). Crashing inputs are written to
# $AMQ_FUZZ_BUILD/artifacts/<target>/; the last lines of each run give its executions per second.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-180}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(model_loader image_loading)
build=${AMQ_FUZZ_BUILD:-$root/build-fuzz}
cxx=${CXX:-$(command -v clang++-14 || command -v clang++)}

cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAMQ_BUILD_FUZZERS=ON -DAMQ_BUILD_TESTS=OFF -DAMQ_BUILD_EXAMPLES=OFF \
  -DAMQ_BUILD_BENCHMARKS=OFF -DAMQ_ENABLE_CUDA=OFF >/dev/null
for target in "${targets[@]}"; do
  cmake --build "$build" -j"${AMQ_FUZZ_JOBS:-2}" --target "fuzz_$target"
done

status=0
for target in "${targets[@]}"; do
  corpus=$build/corpus/$target
  artifacts=$build/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  cp -n "$root/fuzz/corpus/$target/"* "$corpus/" 2>/dev/null || true
  echo "=== fuzz_$target for ${seconds} s"
  # One thread for BLAS and OpenMP: the inputs are tiny, and libFuzzer runs one input at a time.
  if ! OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$build/fuzz/fuzz_$target" "$corpus" \
      -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" >"$build/fuzz_$target.log" 2>&1; then
    status=1
    echo "fuzz_$target FOUND A PROBLEM: see $build/fuzz_$target.log and $artifacts/"
  fi
  grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)" \
    "$build/fuzz_$target.log" || tail -5 "$build/fuzz_$target.log"
  grep -E "^#[0-9]+ +DONE" "$build/fuzz_$target.log" || true
done
exit $status
