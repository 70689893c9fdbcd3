#!/usr/bin/env bash
# Renders chatcore-bench's --csv time series as a PNG for the docs: the rates on
# top, on a log axis (sent, acked and delivered per second for the chat
# scenarios; round trips and handshakes per second when the chat columns are
# all zero), the server's CPU and RSS below, the run phase shaded. A row's
# rates cover the second before its time_s, so the shading starts at the row
# before the first "run" row, and the rates of a row less than half a second
# after the one before (the bench writes 0 there) are left out. --csv appends,
# so a file may hold several runs: the last one is drawn. Columns are found by
# their header names; empty server columns (no --server-pid) leave the lower
# panel empty. Needs gnuplot (Debian: gnuplot-nox).
#
#   bench/chatcore-bench/plot.sh CSV PNG [TITLE]
#
# Exit status 2 for bad arguments, an unreadable or foreign CSV, or no gnuplot;
# 1 if gnuplot fails.
set -euo pipefail

usage() {
  echo "usage: plot.sh CSV PNG [TITLE]" >&2
  exit 2
}
die() { # exit-status message
  echo "plot.sh: $2" >&2
  exit "$1"
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
CSV=$1
PNG=$2
TITLE=${3:-}
if [ -z "$CSV" ] || [ -z "$PNG" ]; then usage; fi
if [ ! -f "$CSV" ] || [ ! -r "$CSV" ]; then die 2 "cannot read $CSV"; fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# The last run's rows as "time_s run sent/s acked/s delivered/s round_trips/s
# handshakes/s cpu% rss_MiB" ("?" for an empty server figure) in data.txt, and
# what the plot needs to know about them as gnuplot assignments in vars.gp.
# Exits 3 for missing columns, 4 for no data rows (the message on stderr).
rc=0
awk -F, -v data="$TMP/data.txt" -v vars="$TMP/vars.gp" '
  function max(a, b) { return a > b ? a : b }
  function num(s) { return s ~ /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/ }
  { sub(/\r$/, "") }
  NR == 1 {
    for (i = 1; i <= NF; i++) col[$i] = i
    n = split("run_id scenario time_s phase handshakes_per_s round_trips_per_s " \
              "server_rss_bytes server_cpu_percent sent_per_s acked_per_s " \
              "delivered_per_s", need, " ")
    missing = ""
    for (i = 1; i <= n; i++)
      if (!(need[i] in col)) missing = missing " " need[i]
    if (missing != "") {
      print "plot.sh: " FILENAME " is not a chatcore-bench --csv file: no column" \
            (missing ~ / .* / ? "s" : "") missing > "/dev/stderr"
      bad = 3
      exit bad
    }
    width = NF
    next
  }
  # A short row (a run killed mid-write) or a stray line: skipped.
  NF != width || !num($col["time_s"]) { skipped++; next }
  {
    rows++
    if (rows == 1 || $col["run_id"] != last_run) { runs++; first = rows }
    last_run = $col["run_id"]
    line[rows] = $0
  }
  END {
    if (bad) exit bad
    if (!rows) {
      print "plot.sh: " FILENAME (NR ? " has no data rows" : " is empty") > "/dev/stderr"
      exit 4
    }
    if (skipped) print "plot.sh: skipped " skipped " malformed rows" > "/dev/stderr"
    if (runs > 1)
      print "plot.sh: " runs " runs in " FILENAME ", drawing the last (run_id " \
            last_run ")" > "/dev/stderr"
    chat = 0; prev_t = 0; run_from = -1; run_to = -1
    for (r = first; r <= rows; r++) {
      split(line[r], f, ",")
      t = f[col["time_s"]] + 0
      inrun = f[col["phase"]] == "run"
      if (inrun && run_from < 0) run_from = prev_t
      if (inrun) run_to = t
      t_max = max(t_max, t)
      sent = f[col["sent_per_s"]] + 0; acked = f[col["acked_per_s"]] + 0
      dlv = f[col["delivered_per_s"]] + 0
      rt = f[col["round_trips_per_s"]] + 0; hs = f[col["handshakes_per_s"]] + 0
      cpu = f[col["server_cpu_percent"]]; rss = f[col["server_rss_bytes"]]
      cpu = num(cpu) ? cpu + 0 : "?"
      rss = num(rss) ? sprintf("%.2f", rss / 1048576) : "?"
      if (sent || acked || dlv) chat = 1
      m_sa = max(m_sa, max(sent, acked)); m_dlv = max(m_dlv, dlv)
      m_rt = max(m_rt, rt); m_hs = max(m_hs, hs)
      if (cpu != "?") { n_cpu++; m_cpu = max(m_cpu, cpu) }
      if (rss != "?") { n_rss++; m_rss = max(m_rss, rss + 0) }
      # The bench writes 0 for a rate over less than half a second (the last
      # row): no figure rather than a false drop.
      if (t - prev_t < 0.5) sent = acked = dlv = rt = hs = "?"
      printf "%s %d %s %s %s %s %s %s %s\n", t, inrun, sent, acked, dlv, rt, hs, cpu,
             rss > data
      prev_t = t
    }
    scenario = f[col["scenario"]]
    gsub(/[^A-Za-z0-9_.-]/, "_", scenario)
    run_id = last_run
    gsub(/[^A-Za-z0-9_.-]/, "_", run_id)
    printf "chat = %d\nt_max = %g\nrun_from = %g\nrun_to = %g\n", chat, t_max,
           run_from, run_to > vars
    printf "m_sa = %g\nm_dlv = %g\nm_rt = %g\nm_hs = %g\n", m_sa, m_dlv, m_rt,
           m_hs > vars
    printf "n_cpu = %d\nm_cpu = %g\nn_rss = %d\nm_rss = %g\n", n_cpu, m_cpu, n_rss,
           m_rss > vars
    printf "scenario = \"%s\"\nrun_id = \"%s\"\n", scenario, run_id > vars
  }' "$CSV" || rc=$?
case $rc in
0) ;;
3 | 4) exit 2 ;;
*) die 2 "cannot parse $CSV" ;;
esac

command -v gnuplot >/dev/null ||
  die 2 "gnuplot not found: install it (Debian: apt-get install gnuplot-nox)"
# gnuplot-nox has pngcairo (anti-aliased); a gnuplot built without cairo has
# only libgd's png.
TERM_NAME=png
terminals=$(gnuplot -e "set terminal" 2>&1 || true)
if grep -qw pngcairo <<<"$terminals"; then TERM_NAME=pngcairo; fi

# gnuplot's single-quoted strings take no escapes but '' for a quote.
gp_quote() { printf "'%s'" "${1//\'/\'\'}"; }
[ -n "$TITLE" ] || TITLE="$(basename "$CSV")"
{
  echo "load $(gp_quote "$TMP/vars.gp")"
  echo "title = $(gp_quote "$TITLE")"
  echo "data = $(gp_quote "$TMP/data.txt")"
  echo "set terminal $TERM_NAME noenhanced size 1000,720"
  echo "set output $(gp_quote "$PNG")"
  cat <<'GP'
set datafile missing '?'
set multiplot title sprintf('%s (%s, run %s)', title, scenario, run_id)
set grid
set key horizontal maxrows 1 at screen 0.5, screen 0.93 center center
# Fixed margins: the two panels' time axes line up and each key sits above
# its panel, below the title.
set lmargin at screen 0.09
set rmargin at screen 0.91
set tmargin at screen 0.89
set bmargin at screen 0.55
set xrange [0:(t_max > 0 ? t_max : 1)]
top(m) = m > 0 ? 1.1 * m : 1
run_key = ''
if (run_from >= 0) {
  set object 1 rect from run_from, graph 0 to run_to, graph 1 behind \
    fillcolor rgb '#e0e8f4' fillstyle solid 1.0 noborder
  run_key = ", NaN with boxes fillcolor rgb '#e0e8f4' fillstyle solid 1.0 noborder title 'run phase'"
}
# The rates differ by the fan-out (a group of 100 delivers 100 times what it
# sends): a log axis keeps every line apart; a 0 sits on the floor.
set logscale y
m_top = chat ? (m_sa > m_dlv ? m_sa : m_dlv) : (m_rt > m_hs ? m_rt : m_hs)
set yrange [0.1:(m_top > 1 ? 2 * m_top : 10)]
set format y '%.0s%c'
set ytics 1, 10
set ytics add ('0' 0.1)
set mytics 10
at_floor(v) = v > 0.1 ? v : 0.1
unset xlabel
set ylabel 'per second'
style = 'with linespoints pt 7 ps 0.6 lw 2'
if (chat) {
  eval("plot data using 1:(at_floor($3)) " . style . " title 'sent/s', " . \
       "data using 1:(at_floor($4)) " . style . " dashtype 2 title 'acked/s', " . \
       "data using 1:(at_floor($5)) " . style . " title 'delivered/s'" . run_key)
} else {
  eval("plot data using 1:(at_floor($6)) " . style . " title 'round_trips/s', " . \
       "data using 1:(at_floor($7)) " . style . " title 'handshakes/s'" . run_key)
}
unset logscale y
unset mytics
set ytics nomirror
set y2tics
set tmargin at screen 0.42
set key at screen 0.5, screen 0.46
set bmargin at screen 0.08
set xlabel 'time (s)'
set ylabel 'server CPU (%)'
set y2label 'server RSS (MiB)'
set format y '%g'
set format y2 '%g'
set ytics autofreq
set yrange [0:(m_cpu > 100 ? 1.1 * m_cpu : 110)]
set y2range [0:top(m_rss)]
cpu_plot = "data using 1:8 axes x1y1 " . style . " lc 4 title 'server CPU %'"
rss_plot = "data using 1:9 axes x1y2 " . style . " lc 7 title 'RSS MiB (right)'" . run_key
# A series without a single value would make gnuplot warn: left out.
if (n_cpu > 0 && n_rss > 0) {
  eval('plot ' . cpu_plot . ', ' . rss_plot)
} else {
  if (n_cpu > 0) {
    eval('plot ' . cpu_plot . run_key)
  } else {
    if (n_rss > 0) {
      eval('plot ' . rss_plot)
    } else {
      set label 2 'no server figures (the bench ran without --server-pid)' \
        at graph 0.5, graph 0.5 center
      eval('plot -1 notitle' . run_key)
    }
  }
}
unset multiplot
GP
} >"$TMP/plot.gp"
if ! gnuplot "$TMP/plot.gp"; then
  rm -f "$PNG" # what gnuplot left is no image
  die 1 "gnuplot failed on $CSV"
fi
