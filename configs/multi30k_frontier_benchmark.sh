#!/usr/bin/env bash
# The speed-quality frontier on test2016, once every training of multi30k_frontier.sh is done:
# one benchmark invocation times every run on the same sentences (results/frontier_multi30k.json
# + .md), then tfnmt.report draws results/frontier_multi30k.png and regenerates docs/results.md.
# Run it on an idle CPU (no training in the background). --resume continues an interrupted one.
# Every run is timed three times in turn (--rounds=3: all runs, then all again, in new
# processes, one timed pass after an untimed one each time) and every row is its fastest pass
# (each recorded in pass_seconds): passes of one program vary by up to 1.5x on the Zen 4 VM
# and its speed drifts over minutes, while the ratio of two runs' fastest passes held within a
# few per cent (docs/decisions.md), so alpha near a target is quoted with the spread of its
# passes. Batch 1 is timed with one intra-op thread and with TensorFlow's default, each row at
# its faster (one was faster on a Xeon for the teacher and HRT; on the Zen 4 the difference is
# within the noise, so batch 1 takes the fastest of six passes); the other batch sizes with
# TensorFlow's default.
#   cd <working directory with runs/> && bash configs/multi30k_frontier_benchmark.sh
# multi30k_frontier.sh runs it itself once its last run is trained (RESULTS: the folder of the
# results, default results; ROWS: the frontier rows' folder, default $RESULTS/frontier_rows;
# NO_REPORT=1: no tfnmt.report).
# Every autoregressive search uses beams 1 (greedy: the fastest point an AT offers, what a NAT's
# single length competes with), 4 (the teacher's reference) and 5 (the HRT paper's b_at, and
# the AT the lean-decoding issue compares mask-predict with), length penalty 1.0; the
# NATs decode 1 length and 2B+1 lengths rescored by the AT they learned from (B = 3: LPD, B = 4:
# the hint paper's 9); mask-predict 4 iterations over 5 length candidates.
set -euo pipefail
PY=${PYTHON:-python}
DATA=${DATA:-../shared/data/multi30k}
RESULTS=${RESULTS:-results}
ROWS=${ROWS:-$RESULTS/frontier_rows}
# Each row times the weights multi30k_frontier.sh picked on val for its own row
# (ROWS/checkpoint/<row>.txt: averaged or best; without one, averaged), and each NAT keeps the
# length candidate of the rule picked there (ROWS/nat_selection/<row>.txt; without one, its
# method's).
RUNS=
rules=()
for row_run in teacher=multi30k_small at_6-1=multi30k_small_6-1 at_12-1=multi30k_small_12-1 \
               hybrid=multi30k_hybrid_multihead_h256_kd hrt=multi30k_hrt_k2 cmlm=multi30k_cmlm \
               hint_nart=multi30k_nart_hints dat=multi30k_dat imitate_nat=multi30k_imitate_nat; do
    row=${row_run%%=*}
    RUNS+="${RUNS:+,}$row=runs/${row_run#*=}"
    if [ "$(cat "$ROWS/checkpoint/$row.txt" 2>/dev/null)" = best ]; then
        RUNS+="@best"
    fi
    pick=$ROWS/nat_selection/$row.txt
    [ ! -e "$pick" ] || rules+=("$row=$(cat "$pick")")
done
resume=()
[ -e "$RESULTS/frontier_multi30k.json" ] && resume=(--resume)
"$PY" -m tfnmt.benchmark --runs="$RUNS" --checkpoint=averaged \
    --source="$DATA/test2016.en" --reference="$DATA/test2016.de" \
    --batch_sizes=1,8,16,32 --beam_sizes=1,4,5 --reference_beam=4 --reference_run=teacher \
    --length_penalty=1.0 --xla=on --length_halfwidths=0,3,4 --iterations=4 --length_beam=5 \
    --repeats=1 --rounds=3 --batch_threads=1:1,1:2 --nat_selection="$(IFS=,; echo "${rules[*]}")" \
    --collapse_repeats \
    --output="$RESULTS/frontier_multi30k" "${resume[@]}"
[ -n "${NO_REPORT:-}" ] || "$PY" -m tfnmt.report
