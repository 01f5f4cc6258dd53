#!/usr/bin/env bash
# The lexical shortlist on the students (the CTranslate2 and low-precision issue: "for the AT,
# the Hybrid, HRT and the NATs; it costs at most 0.2 BLEU"): each run's shortlist
# (tfnmt.shortlist's defaults, built from its own training pairs), every run decoded its own way
# with and without it, batch 1 and 32, on test2016, in one invocation
# (results/shortlist_students_multi30k.json + .md), then tfnmt.report. Run it on an idle CPU
# once multi30k_frontier.sh has averaged these runs (the teacher's rows are in
# multi30k_teacher_precision_benchmark.sh); --resume continues.
#   cd <working directory with runs/> && bash configs/multi30k_shortlist_benchmark.sh
set -euo pipefail
PY=${PYTHON:-python}
DATA=${DATA:-../shared/data/multi30k}
RUNS="hybrid=runs/multi30k_hybrid_multihead_h256_kd,hrt=runs/multi30k_hrt_k2"
RUNS+=",hint_nart=runs/multi30k_nart_hints,imitate_nat=runs/multi30k_imitate_nat"
for run in multi30k_hybrid_multihead_h256_kd multi30k_hrt_k2 multi30k_nart_hints \
           multi30k_imitate_nat; do
    "$PY" -m tfnmt.shortlist --run_dir="runs/$run"
done
resume=()
[ -e results/shortlist_students_multi30k.json ] && resume=(--resume)
"$PY" -m tfnmt.benchmark --runs="$RUNS" --checkpoint=averaged \
    --source="$DATA/test2016.en" --reference="$DATA/test2016.de" \
    --batch_sizes=1,32 --beam_sizes=4 --length_penalty=1.0 --xla=on --length_halfwidths=3,4 \
    --shortlist --batch_threads=1:1,1:2 --output=results/shortlist_students_multi30k "${resume[@]}"
"$PY" -m tfnmt.report
