#!/bin/sh
# The paper's figure 7 on MVTec AD bottle: image and pixel AUROC and scoring time per image
# against the filter size M, for G = 512 ... 4096 hash functions and two bucket widths.
# Writes docs/figures/fig7_bottle.tsv and docs/figures/fig7_bottle.png (docs/results.md).
#
# The MobileNetV2 features are extracted once by `amq compare --extract-only` and cached
# (AMQ_FEATURES, default BUILD/bottle_features.amqf); the sweep reads them. Times are the CPU
# time of one thread (OMP_NUM_THREADS=1), which a machine shared with other jobs does not
# inflate. Environment: AMQ_BUILD (build folder, default ./build), AMQ_DATA, AMQ_WEIGHTS,
# AMQ_FEATURES; arguments are passed to fig7_bottle ([G,...] [log2 M,...] [eps/sigma,...]).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${AMQ_BUILD:-$root/build}
data=${AMQ_DATA:-$root/../shared/data/mvtec_ad/bottle}
weights=${AMQ_WEIGHTS:-$root/../shared/models/mobilenet_v2_1.0_224.safetensors}
cache=${AMQ_FEATURES:-$build/bottle_features.amqf}
figures=$root/docs/figures

for path in "$data" "$weights"; do
  if [ ! -e "$path" ]; then
    echo "sweep_fig7.sh: $path is missing (set AMQ_DATA / AMQ_WEIGHTS)" >&2
    exit 1
  fi
done
cmake --build "$build" --target amq_cli fig7_bottle -j2
if [ ! -f "$cache" ]; then
  "$build/examples/amq" compare --data "$data" --weights "$weights" --features "$cache" \
    --extract-only
fi

mkdir -p "$figures"
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$build/bench/fig7_bottle" "$cache" "$@" \
  > "$figures/fig7_bottle.tsv.tmp"
mv "$figures/fig7_bottle.tsv.tmp" "$figures/fig7_bottle.tsv"

gnuplot -e "tsv='$figures/fig7_bottle.tsv'; png='$figures/fig7_bottle.png'" \
  "$root/scripts/fig7_bottle.gp"
echo "wrote $figures/fig7_bottle.tsv and $figures/fig7_bottle.png"
