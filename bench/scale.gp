# Time of the first-boot job against disk size, seedpart and the peer pipeline, from
# bench/results/scale.dat (bench.py writes it). Call: gnuplot -e "dat='...'; out='...'" scale.gp
set terminal svg size 800,560 dynamic font "sans,12"
set output out
set title "First-boot job against disk size (medians; log scales)"
set xlabel "disk size"
set ylabel "milliseconds"
set logscale x 2
set logscale y 10
set xtics ("4 GiB" 4*2**30, "64 GiB" 64*2**30, "1 TiB" 2**40, "4 TiB" 4*2**40)
set format y "%g"
set key outside below horizontal maxcols 2
set grid
plot dat using 1:4 with linespoints lw 2 pt 7 lc rgb "#c0392b" title "peer, total", \
     dat using 1:5 with linespoints lw 2 pt 6 lc rgb "#e67e22" title "peer, minus xfs resize", \
     dat using 1:2 with linespoints lw 2 pt 5 lc rgb "#1f618d" title "seedpart, total", \
     dat using 1:3 with linespoints lw 2 pt 4 lc rgb "#48c9b0" title "seedpart, minus xfs resize", \
     dat using 1:6 with linespoints lw 1 dt 2 pt 1 lc rgb "#7f8c8d" title "kernel xfs resize (seedpart's ioctl)"
