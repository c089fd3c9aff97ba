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

# Columns: 1 G, 2 eps/sigma, 3 log2 M, 4 B, 5 est. FPR, 6 image AUROC, 7 pixel AUROC,
# 8 encode ms, 9 probe ms, 10 score ms. One line per (G, eps); other rows are undefined (1/0),
# which breaks the line between groups.
gnuplot <<PLOT
set terminal pngcairo size 1500,480 font "sans,11"
set output "$figures/fig7_bottle.png"
set datafile separator "\t"
set multiplot layout 1,3 title "MVTec AD bottle, MobileNetV2 features (D = 448): AMQ against filter size M"
set xlabel "log2 M (filter bits)"
set grid
set key bottom right
colours = "#1b9e77 #d95f02 #7570b3 #e7298a"
hashes = "512 1024 2048 4096"
sel(g, e, col) = (\$1 == g && abs(\$2 - e) < 1e-9) ? column(col) : 1/0
set ylabel "image AUROC"
plot for [i=1:4] "$figures/fig7_bottle.tsv" every ::1 using 3:(sel(word(hashes,i)+0, 0.03, 6)) \
       with linespoints lw 2 pt 7 lc rgb word(colours,i) title "G = ".word(hashes,i).", eps = 0.03 sigma", \
     for [i=1:4] "$figures/fig7_bottle.tsv" every ::1 using 3:(sel(word(hashes,i)+0, 0.1, 6)) \
       with linespoints lw 1 dt 2 pt 6 lc rgb word(colours,i) title "G = ".word(hashes,i).", eps = 0.1 sigma"
set ylabel "pixel AUROC"
plot for [i=1:4] "$figures/fig7_bottle.tsv" every ::1 using 3:(sel(word(hashes,i)+0, 0.03, 7)) \
       with linespoints lw 2 pt 7 lc rgb word(colours,i) notitle, \
     for [i=1:4] "$figures/fig7_bottle.tsv" every ::1 using 3:(sel(word(hashes,i)+0, 0.1, 7)) \
       with linespoints lw 1 dt 2 pt 6 lc rgb word(colours,i) notitle
set ylabel "scoring ms per image (encode + probes, 1 thread, CPU)"
set logscale y
plot for [i=1:4] "$figures/fig7_bottle.tsv" every ::1 using 3:(sel(word(hashes,i)+0, 0.03, 10)) \
       with linespoints lw 2 pt 7 lc rgb word(colours,i) notitle, \
     for [i=1:4] "$figures/fig7_bottle.tsv" every ::1 using 3:(sel(word(hashes,i)+0, 0.1, 10)) \
       with linespoints lw 1 dt 2 pt 6 lc rgb word(colours,i) notitle
unset multiplot
PLOT
echo "wrote $figures/fig7_bottle.tsv and $figures/fig7_bottle.png"
