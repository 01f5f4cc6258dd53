#!/usr/bin/env bash
# The trained teacher on test2016 (the CTranslate2 and low-precision issue): float32, int8 (the
# precision tfnmt recommends with XLA), each with and without the lexical shortlist (IBM Model
# 1, 100 per source piece / 100 frequent: tfnmt.shortlist's defaults, rebuilt every time),
# beside CTranslate2 float32 and int8 (1 and 2 threads) on the same averaged weights, batch 1
# and 32, beam 4, length penalty 1.0: one invocation (results/teacher_precision_multi30k.json +
# .md), then tfnmt.report. Run it on an idle CPU once multi30k_frontier.sh has averaged
# the teacher; --resume continues an interrupted one.
#   cd <working directory with runs/> && bash configs/multi30k_teacher_precision_benchmark.sh
set -euo pipefail
PY=${PYTHON:-python}
DATA=${DATA:-../shared/data/multi30k}
RUN=runs/multi30k_small
"$PY" -m tfnmt.shortlist --run_dir="$RUN"
resume=()
[ -e results/teacher_precision_multi30k.json ] && resume=(--resume)
"$PY" -m tfnmt.benchmark --runs="teacher=$RUN" --checkpoint=averaged \
    --source="$DATA/test2016.en" --reference="$DATA/test2016.de" \
    --batch_sizes=1,32 --beam_sizes=4 --reference_beam=4 --length_penalty=1.0 --xla=on \
    --precisions=float32,int8 --shortlist --ct2_compute_types=float32,int8 --ct2_threads=1,2 \
    --output=results/teacher_precision_multi30k "${resume[@]}"
"$PY" -m tfnmt.report
