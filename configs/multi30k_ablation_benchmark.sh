#!/usr/bin/env bash
# The ablations of the frontier issue at equal budgets (3,000 steps each; the long runs' step-
# 3,000 checkpoints), on test2016, batch 32, once multi30k_frontier.sh has trained them:
# - imitate_nat: SoftCopy + imitation (multi30k_imitate_nat at step 3,000) against SoftCopy
#   and UniformCopy without L_IL (imitation modules kept) and SoftCopy without imitation module
#   (the paper's competitor), 1 length and LPD (7 lengths) rescored by the averaged DAT:
#   results/ablations_imitate_nat_multi30k.json (+ .md; the imitation target is listed by
#   tfnmt.report);
# - nart: L_nll, + L_align, + both hints (multi30k_nart_hints at step 3,000), 1 length and 9
#   lengths rescored by the averaged teacher: results/ablations_nart_multi30k.json.
#   cd <working directory with runs/> && bash configs/multi30k_ablation_benchmark.sh [TABLE...]
# Without arguments both tables, with table names (imitate_nat, nart) those alone; then
# tfnmt.report unless NO_REPORT=1. multi30k_frontier.sh makes each table as soon as its long run
# reaches step 3,000. A complete table is kept; an interrupted one resumes. RESULTS names the
# tables' folder (default results), ROWS the frontier rows' (default $RESULTS/frontier_rows).
set -euo pipefail
PY=${PYTHON:-python}
DATA=${DATA:-../shared/data/multi30k}
RESULTS=${RESULTS:-results}
ROWS=${ROWS:-$RESULTS/frontier_rows}
# Every run of an ablation keeps its rescored candidates by the rule picked on val for the full
# method's frontier row (ROWS/nat_selection/<row>.txt; without one, as when the chain makes the
# table before that run has converged, the method's).
bench() {  # output, rescoring run, halfwidths, runs, frontier row
    local out="$RESULTS/$1" resume=() rule=() pick="$ROWS/nat_selection/$5.txt"
    if grep -qs '"complete": true' "$out.json"; then
        echo "$out.json: complete"
        return 0
    fi
    [ -e "$out.json" ] && resume=(--resume)
    [ ! -e "$pick" ] || rule=(--nat_selection="$(cat "$pick")")
    "$PY" -m tfnmt.benchmark --runs="$4" --checkpoint=latest \
        --source="$DATA/test2016.en" --reference="$DATA/test2016.de" --batch_sizes=32 \
        --xla=on --length_halfwidths="$3" --rescore_run="$2" --rescore_checkpoint=averaged \
        --output="$out" "${resume[@]}" "${rule[@]}"
}
for table in ${*:-imitate_nat nart}; do
    case "$table" in
        imitate_nat) bench ablations_imitate_nat_multi30k runs/multi30k_dat 0,3 \
            "imitate_nat=runs/multi30k_imitate_nat@runs/multi30k_imitate_nat/checkpoints/ckpt-3000,\
imitate_nat_soft=runs/multi30k_imitate_nat_soft,imitate_nat_uniform=runs/multi30k_imitate_nat_uniform,\
imitate_nat_plain=runs/multi30k_imitate_nat_plain" \
            imitate_nat;;
        nart) bench ablations_nart_multi30k runs/multi30k_small 0,4 \
            "nart_nll=runs/multi30k_nart_nll,nart_align=runs/multi30k_nart_align,\
hint_nart=runs/multi30k_nart_hints@runs/multi30k_nart_hints/checkpoints/ckpt-3000" hint_nart;;
        *) echo "error: no ablation table $table (imitate_nat, nart)" >&2; exit 2;;
    esac
done
[ -n "${NO_REPORT:-}" ] || "$PY" -m tfnmt.report
