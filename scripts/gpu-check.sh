#!/usr/bin/env bash
# Builds, checks and times the CUDA backend on a machine with an NVIDIA GPU, in about five
# minutes, and prints a short table last:
#   CPU-vs-GPU equality (the CUDA tests), encode ms per map, contains keys/s from 1 MiB to
#   8 GiB, scorer ms per map, end-to-end WRN-50 images/s (when LibTorch with CUDA is found
#   through python3's torch), peak GPU memory.
# Usage: scripts/gpu-check.sh [build directory]   (default: build-gpu)
# Logs and the benchmark JSON stay in <build directory>/gpu-check/, and are copied to $OUT
# when that variable names a directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build-gpu}
logs=$build/gpu-check
budget=${AMQ_GPU_CHECK_SECONDS:-360}
mkdir -p "$logs"

step() { printf '\n=== %s (%ds)\n' "$*" "$SECONDS"; }
die() { printf 'gpu-check: %s\n' "$*" >&2; exit 1; }
# Seconds left of the budget, at least `floor` so that a late step still gets a chance to fail
# with its own message; usage: left floor cap.
left() {
  local rest=$((budget - SECONDS))
  ((rest < $1)) && rest=$1
  ((rest > $2)) && rest=$2
  echo "$rest"
}

step "Prerequisites"
export PATH=$PATH:/usr/local/cuda/bin
command -v cmake >/dev/null || die "cmake not found"
command -v nvcc >/dev/null || die "nvcc not found (looked in PATH and /usr/local/cuda/bin)"
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: is this a GPU machine?"
gpu=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
      | head -n1) || die "nvidia-smi cannot query the GPU"
echo "GPU: $gpu"
nvcc --version | tail -n2
jobs=$(nproc)
((jobs > 16)) && jobs=16

# LibTorch with CUDA, for the end-to-end row: python3's torch package carries one.
torch_prefix=""
torch_note="skipped: no CUDA LibTorch"
if command -v python3 >/dev/null; then
  if torch_info=$(timeout 60 python3 -c \
      'import torch; print(torch.utils.cmake_prefix_path); print(torch.version.cuda or "")' \
      2>/dev/null); then
    if [ -n "$(sed -n 2p <<<"$torch_info")" ]; then
      torch_prefix=$(sed -n 1p <<<"$torch_info")
      echo "LibTorch with CUDA $(sed -n 2p <<<"$torch_info") at $torch_prefix"
    fi
  fi
fi

step "Configure (Release, CUDA on)"
arch=native
cmake_minor=$(cmake --version | sed -n '1s/[^0-9]*\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
read -r major minor <<<"$cmake_minor"
((major < 3 || (major == 3 && minor < 24))) && arch="80-real;90"
common=(-S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAMQ_ENABLE_CUDA=ON -DAMQ_BUILD_TESTS=ON
        -DAMQ_BUILD_BENCHMARKS=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch")
configured=no
if [ -n "$torch_prefix" ]; then
  if timeout "$(left 30 120)" cmake "${common[@]}" -DAMQ_BUILD_EXAMPLES=ON \
      "-DCMAKE_PREFIX_PATH=$torch_prefix" >"$logs/configure.log" 2>&1; then
    configured=yes
  else
    torch_note="skipped: configuring with LibTorch failed (see $logs/configure.log)"
    rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
  fi
fi
if [ "$configured" = no ]; then
  timeout "$(left 30 120)" cmake "${common[@]}" -DAMQ_BUILD_EXAMPLES=OFF \
    >>"$logs/configure.log" 2>&1 || { tail -n 30 "$logs/configure.log"; die "configure failed"; }
fi
grep -q 'AMQ_ENABLE_CUDA:BOOL=ON' "$build/CMakeCache.txt" || die "CUDA was not enabled"

step "Build the CUDA targets (-j$jobs)"
timeout "$(left 60 240)" cmake --build "$build" -j"$jobs" \
  --target test_cuda_backend test_cuda_device_logic bench_cuda >"$logs/build.log" 2>&1 ||
  { tail -n 40 "$logs/build.log"; die "build failed"; }
e2e=""
if [ "$configured" = yes ]; then
  if grep -q amq_wrn50_cuda_throughput "$build/Makefile" "$build/build.ninja" 2>/dev/null ||
     cmake --build "$build" --target help 2>/dev/null | grep -q amq_wrn50_cuda_throughput; then
    if timeout "$(left 20 180)" cmake --build "$build" -j"$jobs" \
        --target amq_wrn50_cuda_throughput >"$logs/build-e2e.log" 2>&1; then
      e2e=$build/examples/amq_wrn50_cuda_throughput
    else
      torch_note="skipped: building the WRN-50 program failed (see $logs/build-e2e.log)"
    fi
  else
    torch_note="skipped: feature sources not configured (LibTorch or nlohmann-json missing)"
  fi
fi

step "CUDA tests"
tests_status=PASS
AMQ_REQUIRE_GPU=1 timeout "$(left 20 90)" "$build/tests/cuda/test_cuda_device_logic" \
  >"$logs/test_device_logic.log" 2>&1 || tests_status=FAIL
AMQ_REQUIRE_GPU=1 timeout "$(left 20 150)" "$build/tests/cuda/test_cuda_backend" \
  >"$logs/test_backend.log" 2>&1 || tests_status=FAIL
cat "$logs/test_device_logic.log" "$logs/test_backend.log"

step "CUDA benchmarks"
bench_status=ok
timeout "$(left 30 150)" "$build/bench/cuda/bench_cuda" --benchmark_out="$logs/bench.json" \
  --benchmark_out_format=json 2>&1 | tee "$logs/bench.log" || bench_status=FAILED

step "End-to-end WRN-50 (random weights, 224 x 224)"
e2e_status=""
if [ -n "$e2e" ]; then
  set +e
  timeout "$(left 20 120)" "$e2e" 1 8 32 64 2>&1 | tee "$logs/e2e.log"
  code=${PIPESTATUS[0]}
  set -e
  case $code in
    0) e2e_status=ok ;;
    77) torch_note=$(grep -m1 skipped "$logs/e2e.log" || echo 'skipped: no CUDA for LibTorch') ;;
    124) torch_note="stopped: over its time limit (see $logs/e2e.log)"; e2e_status=partial ;;
    *) torch_note="FAILED with exit code $code (see $logs/e2e.log)" ;;
  esac
fi

# The table, last.
summary() {
  printf '\n=== amq CUDA check on %s, %s, %ds\n' "$gpu" "$(date -u +%Y-%m-%dT%H:%MZ)" "$SECONDS"
  local tests_line
  tests_line=$(grep -h 'test cases:' "$logs/test_backend.log" | tail -n1 | sed 's/\[doctest\] //')
  printf '%-34s %s\n' "CPU-vs-GPU equality (tests)" "$tests_status: ${tests_line:-no summary}"
  grep -h 'codes differ' "$logs/test_backend.log" | sed 's/.*MESSAGE: //' |
    while read -r line; do printf '%-34s %s\n' "  codes differing from the CPU's" "$line"; done
  if command -v python3 >/dev/null && [ -s "$logs/bench.json" ]; then
    python3 - "$logs/bench.json" <<'PY' || echo "benchmark table: could not read bench.json"
import json, sys
runs = [b for b in json.load(open(sys.argv[1]))["benchmarks"] if not b.get("error_occurred")]
def row(label, text): print(f"{label:<34} {text}")
def size(log2):
    return f"{2 ** (log2 - 30)} GiB" if log2 >= 30 else f"{2 ** (log2 - 20)} MiB"
enc = [b for b in runs if b["name"].startswith("BM_Encode")]
row("encode ms/map (P=784, G=2048)",
    "   ".join(f"D={b['name'].split('D:')[1].split('/')[0]}"
               f"{' structured' if 'structured:1' in b['name'] else ''}: {b['ms_per_map']:.3f}"
               for b in enc))
for classic, label in ((0, "split-block"), (1, "classic")):
    sel = [b for b in runs
           if b["name"].startswith("BM_Contains") and f"classic:{classic}/" in b["name"]]
    text = "  ".join(f"{size(int(b['name'].split('log2_bytes:')[1].split('/')[0]))}: "
                     f"{b['keys_per_s']:.2e}" for b in sel)
    row(f"contains keys/s {label}", text or "no result")
    if sel:
        row("", "  fpr " + "  ".join(f"{b['fpr']:.1e}" for b in sel) + "  (bits/key "
            + " ".join(f"{b['bits_per_key']:.0f}" for b in sel) + ")")
sc = [b for b in runs if b["name"].startswith("BM_Score")]
row("score ms/map (28x28x3584, G=2048)",
    "  ".join(f"{'classic' if 'classic:1' in b['name'] else 'split'} batch "
              f"{b['name'].split('batch:')[1].split('/')[0]}: {b['ms_per_map']:.3f}" for b in sc))
peak = max((b.get("amq_peak_MiB", 0) for b in runs), default=0)
used = max((b.get("device_used_MiB", 0) for b in runs), default=0)
row("peak GPU memory (benchmarks)", f"amq buffers {peak:.0f} MiB, device in use {used:.0f} MiB")
PY
  else
    printf '%-34s %s\n' "benchmarks" "$bench_status: no JSON table (python3 or bench.json missing)"
  fi
  if [ -n "$e2e_status" ] && grep -q 'wrn50_e2e batch=' "$logs/e2e.log"; then
    local b1 best
    b1=$(grep -m1 'wrn50_e2e batch=1 ' "$logs/e2e.log" |
         sed 's/.*images_per_s=\([0-9.]*\) ms_per_batch=\([0-9.]*\)/\1 images\/s, \2 ms latency/')
    best=$(grep 'wrn50_e2e batch=' "$logs/e2e.log" | sort -t= -k3 -g | tail -n1 |
           sed 's/wrn50_e2e batch=\([0-9]*\) images_per_s=\([0-9.]*\).*/\2 images\/s at batch \1/')
    printf '%-34s %s\n' "WRN-50 e2e batch 1" "${b1:-no result}"
    local note=""
    [ "$e2e_status" = partial ] && note=" (stopped at its time limit)"
    printf '%-34s %s\n' "WRN-50 e2e best batch" "${best:-no result}$note"
    printf '%-34s %s\n' "peak GPU memory (WRN-50 e2e)" \
      "$(grep -m1 'peak_device_used' "$logs/e2e.log" | sed 's/wrn50_e2e //' || echo 'no result')"
  else
    printf '%-34s %s\n' "WRN-50 e2e images/s" "$torch_note"
  fi
}
summary | tee "$logs/summary.txt"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp -r "$logs" "$OUT/" || true; fi
[ "$tests_status" = PASS ] && [ "$bench_status" = ok ]
