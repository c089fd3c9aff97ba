# The figure of scripts/sweep_fig7.sh: gnuplot -e "tsv='docs/figures/fig7_bottle.tsv';
# png='docs/figures/fig7_bottle.png'" scripts/fig7_bottle.gp
# Columns of the table: 1 G, 2 eps/sigma, 3 log2 M, 4 B, 5 est. FPR, 6 image AUROC, 7 pixel
# AUROC, 8 encode ms, 9 probe ms, 10 score ms. One line per (G, eps): the other rows are
# undefined (1/0) in it, which breaks the line between groups.
set terminal pngcairo size 1500,480 font "sans,11"
set output png
set datafile separator "\t"
set multiplot layout 1,3 title \
  "MVTec AD bottle, MobileNetV2 (D = 448), paper's method: AUROC and time against M"
set xlabel "log2 M (filter bits)"
set grid
colours = "#1b9e77 #d95f02 #7570b3 #e7298a"
hashes = "512 1024 2048 4096"
sel(g, e, col) = ($1 == g && abs($2 - e) < 1e-9) ? column(col) : 1/0
set ylabel "image AUROC (mean image score)"
plot for [i=1:4] tsv every ::1 using 3:(sel(word(hashes,i)+0, 0.03, 6)) \
       with linespoints lw 2 pt 7 lc rgb word(colours,i) notitle, \
     for [i=1:4] tsv every ::1 using 3:(sel(word(hashes,i)+0, 0.1, 6)) \
       with linespoints lw 1 dt 2 pt 6 lc rgb word(colours,i) notitle
set ylabel "pixel AUROC (nearest-neighbour upsampling)"
set yrange [0.76:0.96]
set key bottom right
plot for [i=1:4] tsv every ::1 using 3:(sel(word(hashes,i)+0, 0.03, 7)) \
       with linespoints lw 2 pt 7 lc rgb word(colours,i) \
       title "G = ".word(hashes,i).", eps = 0.03 sigma", \
     for [i=1:4] tsv every ::1 using 3:(sel(word(hashes,i)+0, 0.1, 7)) \
       with linespoints lw 1 dt 2 pt 6 lc rgb word(colours,i) \
       title "G = ".word(hashes,i).", eps = 0.1 sigma"
set ylabel "scoring ms per image (encode + probes, 1 thread, CPU)"
set autoscale y
set logscale y
plot for [i=1:4] tsv every ::1 using 3:(sel(word(hashes,i)+0, 0.03, 10)) \
       with linespoints lw 2 pt 7 lc rgb word(colours,i) notitle, \
     for [i=1:4] tsv every ::1 using 3:(sel(word(hashes,i)+0, 0.1, 10)) \
       with linespoints lw 1 dt 2 pt 6 lc rgb word(colours,i) notitle
unset multiplot
