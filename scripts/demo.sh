#!/usr/bin/env bash
# The main job: build the amq command line, train on the normal images of MVTec AD "bottle"
# with MobileNetV2 features and the default parameters, then test and print the table.
#
# Data and weights are read from ../shared beside the repository, or from AMQ_DATA and
# AMQ_WEIGHTS when set:
#   AMQ_DATA     an MVTec AD category folder (train/good, test/*, ground_truth/*). MVTec AD is
#                published at https://www.mvtec.com/company/research/datasets/mvtec-ad
#                (CC BY-NC-SA 4.0); unpack it and point AMQ_DATA at e.g. mvtec_ad/bottle.
#   AMQ_WEIGHTS  MobileNetV2 1.0/224 ImageNet weights as float32 safetensors; see
#                docs/feature-sources.md for how that file is made from the Apache-2.0
#                TF-slim release.
# Outputs go to AMQ_OUT (default build-demo/demo): model, report.json, heatmaps/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$root/../shared
data=${AMQ_DATA:-$shared/data/mvtec_ad/bottle}
weights=${AMQ_WEIGHTS:-$shared/models/mobilenet_v2_1.0_224.safetensors}
build=${AMQ_BUILD:-$root/build-demo}
out=${AMQ_OUT:-$build/demo}

if [ ! -d "$data/train/good" ] || [ ! -d "$data/test" ]; then
  echo "demo: no MVTec AD category at '$data' (needs train/good and test/)." >&2
  echo "demo: download MVTec AD from https://www.mvtec.com/company/research/datasets/mvtec-ad" >&2
  echo "demo: and run: AMQ_DATA=/path/to/mvtec_ad/bottle scripts/demo.sh" >&2
  exit 2
fi
if [ ! -f "$weights" ]; then
  echo "demo: no MobileNetV2 weights at '$weights'." >&2
  echo "demo: make them as docs/feature-sources.md describes and run:" >&2
  echo "demo:   AMQ_WEIGHTS=/path/to/mobilenet_v2_1.0_224.safetensors scripts/demo.sh" >&2
  exit 2
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DAMQ_BUILD_TESTS=OFF \
  -DAMQ_BUILD_BENCHMARKS=OFF -DAMQ_ENABLE_CUDA=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target amq_cli
amq=$build/examples/amq

mkdir -p "$out"
"$amq" train --data "$data" --backbone mobilenet_v2 --weights "$weights" --out "$out/model.amq"
"$amq" test --model "$out/model.amq" --data "$data" --report "$out/report.json" \
  --heatmaps "$out/heatmaps"
echo "demo: report in $out/report.json, heatmaps in $out/heatmaps"
