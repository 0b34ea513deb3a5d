# bench/ratios.svg: each peer's wall time per item divided by lua-truto's, per scenario.
#   gnuplot -e "datafile='ratios.dat'; output='ratios.svg'; rows=3" bench/ratios.gp
# ratios.dat (written by bench/report.lua): a header line, then one row per scenario, one
# tab-separated column per peer, "?" where a peer has no number.
# With -e "png=1" it draws a PNG instead (to look at it where SVG cannot be shown).
if (exists("png")) {
  set terminal pngcairo size 860,480 enhanced font "sans,11" background "#ffffff"
} else {
  set terminal svg size 860,480 dynamic enhanced font "sans,13" background "#ffffff"
}
set output output
set datafile separator "\t"
set datafile missing "?"
set title "Wall time per item relative to lua-truto (1 = as fast as lua-truto, 4 = four times slower)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.9
set logscale y 2
set yrange [0.25:*]
set offsets 0, 0, graph 0.12, 0
set ytics (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
set ylabel "peer / lua-truto (log scale)"
set grid ytics lc rgb "#dddddd"
set key outside bottom center horizontal
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "#000000" front
set key autotitle columnheader
if (!exists("rows")) rows = 3
set xrange [-0.6:rows - 0.4]
# Four peers per cluster and a gap of one bar: bar i of row r is centred on r + (i - 3.5) / 5.
plot for [i=2:5] datafile using i:xtic(1) lc i, \
     for [i=2:5] datafile using ($0 + (i - 3.5) / 5.0):(column(i)):(sprintf("%.1f", column(i))) \
       with labels offset 0, 0.6 font ",10" notitle
