#!/usr/bin/env bash
# The Multi30k trainings behind the speed-quality frontier, one at a time, in order. Every step
# resumes or is skipped when done, so after any stop the same command carries on:
#   cd <working directory with configs/, data/ and runs/> && bash configs/multi30k_frontier.sh
# PYTHON names the interpreter (default: python). Runs train until greedy val BLEU has not
# improved for 3 evaluations (a converged run's command returns at once); ablations have a fixed
# 3,000-step budget. Ctrl-C or SIGTERM stops the current training after saving (exit 130/143).
set -euo pipefail
PY=${PYTHON:-python}
DATA=${DATA:-../shared/data/multi30k}

# RUNS_ARCHIVE names a folder of packed runs (python -m tfnmt.pack_run), e.g. the repository's
# results/runs: a run found there and not in runs/ is copied in instead of trained again, and a
# run this script averages is packed there (so a new machine need not train it again).
ARCHIVE=${RUNS_ARCHIVE:-}

# A run in progress is kept there too, as <run>.snapshot: after stopping the chain,
#   RUNS_ARCHIVE=... bash configs/multi30k_frontier.sh --snapshot
# snapshots every run in runs/ not yet packed there (tfnmt.pack_run --snapshot: newest training
# checkpoint, best weights, records); a new machine copies a snapshot in and resumes it.
train() {  # run, more tfnmt.train flags; exits 130/143 if stopped; a packed run is done
    local kept
    for kept in "$1/packed.json" "$1.snapshot/snapshot.json"; do
        if [ -n "$ARCHIVE" ] && [ ! -e "runs/$1" ] && [ -e "$ARCHIVE/$kept" ]; then
            kept=$(dirname "$kept")
            mkdir -p runs && cp -r "$ARCHIVE/$kept" "runs/$1.tmp-$$" && mv "runs/$1.tmp-$$" "runs/$1"
            echo "runs/$1: copied from $ARCHIVE/$kept"
        fi
    done
    [ -e "runs/$1/packed.json" ] ||
        "$PY" -m tfnmt.train --flagfile="configs/$1.flags" $(precision_flags "$1") "${@:2}"
}
# Every run trains in mixed bfloat16 with element-wise XLA (configs/multi30k_bf16.flags; the
# students' recipes include it, the teacher's does not, so that its flags stay a default for any
# hardware) where the CPU has bfloat16 matrix instructions (AMX, AVX512_BF16: 1.36x float32 with
# XLA on a Xeon with AMX, the same val curve over 1,500 teacher steps); elsewhere in float32, XLA
# as the recipe says (the bfloat16 mode ran at 0.44x float32 on an AVX2-only EPYC,
# docs/decisions.md). A run keeps the precision it started with.
precision_flags() {
    local config="runs/$1/config.json" precision=float32
    if [ -e "$config" ]; then
        grep -q '"mixed_precision": "mixed_bfloat16"' "$config" && precision=mixed_bfloat16
    elif grep -qw -e amx_bf16 -e avx512_bf16 "${CPUINFO:-/proc/cpuinfo}"; then
        precision=mixed_bfloat16
    fi
    if [ "$precision" = float32 ]; then
        echo "--mixed_precision=float32"
    elif ! includes "configs/$1.flags" configs/multi30k_bf16.flags; then
        echo "--flagfile=configs/multi30k_bf16.flags"
    fi
}
includes() {  # flag file, flag file: whether the first includes the second, at any depth
    local part
    for part in $(sed -n 's/^--flagfile=//p' "$1"); do
        { [ "$part" = "$2" ] || includes "$part" "$2"; } && return 0
    done
    return 1
}
# The training checkpoints a run keeps beside its averaged weights when packed or snapshot:
# the ablations compare these runs' step-3,000 weights (configs/multi30k_ablation_benchmark.sh).
kept_checkpoints() {
    case "$1" in multi30k_nart_hints|multi30k_imitate_nat) echo ckpt-3000;; esac
}
average() {  # the last five checkpoints, once; then packed into RUNS_ARCHIVE
    [ -e "runs/$1/checkpoints/averaged/checkpoint" ] ||
        "$PY" -m tfnmt.average_checkpoints --run_dir="runs/$1" --num_last=5
    local kept best=
    kept=$(kept_checkpoints "$1")
    [ ! -e "runs/$1/checkpoints/best/checkpoint" ] || best=,best  # checkpoint_pick may take it
    [ -z "$ARCHIVE" ] || [ -e "$ARCHIVE/$1" ] ||
        "$PY" -m tfnmt.pack_run --run_dir="runs/$1" --output="$ARCHIVE/$1" \
            --checkpoints="averaged$best${kept:+,$kept}"
    [ -z "$ARCHIVE" ] || rm -rf "$ARCHIVE/$1.snapshot"  # packed: its snapshot is not needed
}
# The training source translated by a teacher's averaged weights (resumable), kept gzipped in
# RUNS_ARCHIVE/distilled with a digest of those weights beside it (<file>.gz.teacher): a new
# machine copies the targets in only for the same weights (the packed teacher copied in), so its
# students resume on the same targets without decoding 29,000 sentences again. A teacher trained
# again distils again, and its targets replace the archived ones.
weights_digest() {  # of runs/$1's averaged weights
    { cat "runs/$1/checkpoints/averaged/"*.data-* 2>/dev/null || true; } | sha256sum | cut -c1-16
}
distill() {
    local out="data/distilled/$1.train.de" kept="$ARCHIVE/distilled/$1.train.de.gz" digest
    digest=$(weights_digest "$1")
    if [ ! -e "$out" ] && [ -n "$ARCHIVE" ] && [ -e "$kept" ]; then
        if [ "$(cat "$kept.teacher" 2>/dev/null)" = "$digest" ]; then
            mkdir -p data/distilled && gzip -dc "$kept" > "$out.tmp-$$" && mv "$out.tmp-$$" "$out"
            echo "$out: copied from $kept"
        else
            echo "$kept: distilled by other weights than runs/$1's averaged ones; distilling again"
        fi
    fi
    [ -e "$out" ] ||
        "$PY" -m tfnmt.distill --teacher_run="runs/$1" --checkpoint=averaged \
            --source="$DATA/train.en" --output="$out" \
            --beam_size=4 --length_penalty=1.0 --batch_size=64
    if [ -n "$ARCHIVE" ] && [ "$(cat "$kept.teacher" 2>/dev/null)" != "$digest" ]; then
        mkdir -p "$ARCHIVE/distilled" && gzip -cn "$out" > "$kept.tmp-$$" &&
            echo "$digest" > "$kept.teacher.tmp-$$" && mv "$kept.tmp-$$" "$kept" &&
            mv "$kept.teacher.tmp-$$" "$kept.teacher"
    fi
}

# FRONTIER_ROWS names a folder (the repository's results/frontier_rows) where each run, once
# averaged, is benchmarked beside the teacher on test2016 (the batch sizes and decodings of
# configs/multi30k_frontier_benchmark.sh), so a machine replaced before the whole chain is done
# loses the weights but not their measurement (tfnmt.report assembles the rows, each against
# its own file's teacher; the two are timed in turn twice, each row keeping its faster pass,
# so drift over minutes reaches both alike). Timing needs an idle CPU: with CPU_LOCK set, the
# benchmark holds that flock(1) lock file, and whatever else loads the CPU should take it too.
# An interrupted row resumes; a failed one is reported and the trainings go on.
ROWS=${FRONTIER_ROWS:-}
frontier_row() {  # run directory name, row name
    [ -n "$ROWS" ] || return 0
    local out="$ROWS/$2" runs=teacher=runs/multi30k_small beams=1,4,5 resume=() rule=() pick
    grep -qs '"complete": true' "$out.json" && return 0
    # imitate-NAT's targets are against the DAT it starts from and learns the translations of:
    # timed in the same invocation (the DAT's own row may time weights a lost machine trained).
    [ "$2" != imitate_nat ] || runs+=",dat=runs/multi30k_dat"
    if [ "$2" != teacher ]; then
        pick=$(checkpoint_pick "$1" "$2")
        runs+=",$2=runs/$1"
        [ "$pick" = averaged ] || runs+="@$pick"
    fi
    # The NATs' rows need only the teacher's alpha reference, mask-predict's the beam 5 it is
    # measured against too; they keep the length candidate of the rule picked on val, and are
    # timed with their repeated tokens collapsed too.
    case "$2" in hint_nart|imitate_nat) beams=4;; cmlm) beams=4,5;; esac
    if [ "$2" = hint_nart ] || [ "$2" = imitate_nat ]; then
        pick=$(nat_rule "$1" "$2")
        rule=(--nat_selection="$2=$pick" --collapse_repeats)
    fi
    mkdir -p "$ROWS"
    # A partial row begun with other runs (a pick that changed since) cannot be resumed (the
    # benchmark refuses other weights): it is set aside, kept, and the row begins again.
    if [ -e "$out.json" ] && [ "$(timed_runs "$out.json")" != "$runs" ]; then
        local aside
        aside="$ROWS/set_aside/$2.$(date -u +%Y%m%dT%H%M%S)"
        mkdir -p "$ROWS/set_aside" && mv "$out.json" "$aside.json"
        [ ! -e "$out.md" ] || mv "$out.md" "$aside.md"
        echo "frontier row $2: its partial rows timed other runs; set aside in $aside.json" >&2
    fi
    [ -e "$out.json" ] && resume=(--resume)
    measured "frontier row $2" "$PY" -m tfnmt.benchmark --runs="$runs" --checkpoint=averaged \
        --source="$DATA/test2016.en" --reference="$DATA/test2016.de" --batch_sizes=1,8,16,32 \
        --beam_sizes="$beams" --reference_beam=4 --reference_run=teacher --length_penalty=1.0 \
        --xla=on --length_halfwidths=0,3,4 --iterations=4 --length_beam=5 --repeats=1 --rounds=2 \
        --batch_threads=1:1,1:2 --output="$out" "${resume[@]}" "${rule[@]}" || true
}
# A measurement under CPU_LOCK: stopped (exit 130/143), it stops the chain; failed, it is
# reported, returns non-zero, and the trainings go on.
measured() {  # what, command...
    local what=$1 code=0
    shift
    ${CPU_LOCK:+flock "$CPU_LOCK"} "$@" || code=$?
    [ "$code" -lt 128 ] || exit "$code"
    [ "$code" -eq 0 ] || echo "$what failed (exit $code); the trainings go on" >&2
    return "$code"
}
# Each student's lexical shortlist (#17: "for the AT, the Hybrid, HRT and the NATs; it costs at
# most 0.2 BLEU"), once its row is timed: the lists built from the run's own training pairs
# (tfnmt.shortlist's defaults; the teacher's too, once), the weights and candidate rule of its
# row decoded its own way with and without them beside the teacher (beam 4, batch 1 and 32,
# test2016) into shortlist_<row>_multi30k.json in the folder above FRONTIER_ROWS. The teacher's
# rows with int8 and CTranslate2 are configs/multi30k_teacher_precision_benchmark.sh's.
shortlist_row() {  # run directory name, row name
    case "$2" in hybrid|hrt|hint_nart|imitate_nat) ;; *) return 0;; esac
    [ -n "$ROWS" ] || return 0
    local out runs=teacher=runs/multi30k_small pick halfwidths=0 rule=() resume=() run
    out="$(dirname "$ROWS")/shortlist_$2_multi30k"
    grep -qs '"complete": true' "$out.json" && return 0
    pick=$(checkpoint_pick "$1" "$2")
    runs+=",$2=runs/$1"
    [ "$pick" = averaged ] || runs+="@$pick"
    case "$2" in
        hint_nart) halfwidths=0,4;;
        imitate_nat) halfwidths=0,3;;
    esac
    [ "$halfwidths" = 0 ] || rule=(--nat_selection="$2=$(nat_rule "$1" "$2")")
    for run in multi30k_small "$1"; do
        [ -e "runs/$run/shortlist.npz" ] ||
            measured "the shortlist of $run" "$PY" -m tfnmt.shortlist --run_dir="runs/$run" ||
            return 0
    done
    [ -e "$out.json" ] && resume=(--resume)
    measured "shortlist row $2" "$PY" -m tfnmt.benchmark --runs="$runs" --checkpoint=averaged \
        --source="$DATA/test2016.en" --reference="$DATA/test2016.de" --batch_sizes=1,32 \
        --beam_sizes=4 --reference_run=teacher --length_penalty=1.0 --xla=on \
        --length_halfwidths="$halfwidths" --shortlist --batch_threads=1:1 --output="$out" \
        "${resume[@]}" "${rule[@]}" || true
}
# The equal-budget ablations (configs/multi30k_ablation_benchmark.sh, into the folder above
# FRONTIER_ROWS: the repository's results/) are decoded as soon as their long run has its step-
# 3,000 checkpoint, under CPU_LOCK like the rows; once a table is complete its ablation runs
# are not trained again (on a new machine, say).
ablation_table() {  # the long run; prints the table's name
    case "$1" in *imitate_nat*) echo imitate_nat;; *nart*) echo nart;; esac
}
ablation_done() {  # run
    [ -n "$ROWS" ] &&
        grep -qs '"complete": true' "$(dirname "$ROWS")/ablations_$(ablation_table "$1")_multi30k.json"
}
ablations() {  # the long run, at step 3,000
    [ -n "$ROWS" ] || return 0
    measured "the ablations of $1" env PYTHON="$PY" DATA="$DATA" RESULTS="$(dirname "$ROWS")" \
        ROWS="$ROWS" NO_REPORT=1 bash configs/multi30k_ablation_benchmark.sh \
        "$(ablation_table "$1")" || true
}
timed_runs() {  # a row file -> the --runs its benchmark invocation timed (its provenance)
    { grep -o '"command": "[^"]*' "$1" | grep -o -- '--runs=[^ "]*' || true; } | head -1 | cut -c8-
}
# Which of a NAT's rescored length candidates it keeps (--nat_selection), picked on val: the
# rule of higher val BLEU (all 1,014 sentences, the paper's B: the hint paper's 9 lengths,
# imitate-NAT's LPD delta T = 3), a tie keeping total (the hint paper's "highest probability").
# Both scores and the pick stay in FRONTIER_ROWS/nat_selection/ (<row>.val.<rule>.json,
# <row>.txt; a folder of its own: the rows' folder holds benchmark files only), with a digest
# of the averaged weights they scored (<row>.weights): weights trained again pick again.
nat_rule() {  # run directory name, row name; prints the rule
    local halfwidth=4
    [ "$2" = imitate_nat ] && halfwidth=3
    val_pick "$1" nat_selection "$2" nat_selection normalized total --checkpoint=averaged \
        --length_halfwidth="$halfwidth"
}
# Which weights an autoregressive student's row times: the average of its last five
# checkpoints or its best one, whichever scores higher on val (all 1,014 sentences, beam 4,
# length penalty 1.0, as its row is measured; a tie keeps the average). HRT's best checkpoint
# beat its average by 0.22 (session 53); the Hybrid's and the 12-1's averages won. Kept in
# FRONTIER_ROWS/checkpoint/ like the NATs' rule. The teacher and the DAT keep their averages:
# the students learn from those (distilled targets, imitate-NAT's start).
checkpoint_pick() {  # run directory name, row name; prints averaged or best
    case "$2" in at_6-1|at_12-1|hybrid|hrt) ;; *) echo averaged; return 0;; esac
    [ -e "runs/$1/checkpoints/best/checkpoint" ] || { echo averaged; return 0; }
    val_pick "$1" checkpoint "$2" checkpoint best averaged --beam_size=4 --length_penalty=1.0
}
# Scores two values of one tfnmt.evaluate flag on val and prints the one of higher BLEU (a tie:
# the second). Arguments: run directory name, folder under FRONTIER_ROWS, row name, the flag,
# its two values, more flags for both.
val_pick() {
    local run=$1 out="$ROWS/$2/$3" flag=$4 first=$5 second=$6 value digest
    shift 6
    digest=$(weights_digest "$run")
    if [ "$(cat "$out.weights" 2>/dev/null)" != "$digest" ]; then
        rm -f "$out.txt" "$out.val.$first.json" "$out.val.$second.json"
        mkdir -p "$(dirname "$out")" && echo "$digest" > "$out.weights"
    fi
    if [ ! -e "$out.txt" ]; then
        for value in "$first" "$second"; do
            [ -e "$out.val.$value.json" ] || "$PY" -m tfnmt.evaluate --run_dir="runs/$run" \
                --source="$DATA/val.en" --reference="$DATA/val.de" --"$flag"="$value" "$@" \
                --result="$out.val.$value.json" >&2
        done
        "$PY" -c 'import json, sys
bleu = [json.load(open(f, encoding="utf-8"))["values"]["bleu"] for f in sys.argv[3:]]
print(sys.argv[1] if bleu[0] > bleu[1] else sys.argv[2])' \
            "$first" "$second" "$out.val.$first.json" "$out.val.$second.json" > "$out.txt.tmp-$$"
        mv "$out.txt.tmp-$$" "$out.txt"
    fi
    cat "$out.txt"
}
# The frontier row of each averaged run (the Hybrid's MLE stage is not one).
row_name() {
    case "$1" in
        multi30k_small) echo teacher;; multi30k_small_6-1) echo at_6-1;;
        multi30k_small_12-1) echo at_12-1;; multi30k_hybrid_multihead_h256_kd) echo hybrid;;
        multi30k_hrt_k2) echo hrt;; multi30k_cmlm) echo cmlm;; multi30k_nart_hints) echo hint_nart;;
        multi30k_dat) echo dat;; multi30k_imitate_nat) echo imitate_nat;;
    esac
}

RUNS="multi30k_small multi30k_dat multi30k_imitate_nat_soft multi30k_imitate_nat_uniform
multi30k_imitate_nat_plain multi30k_imitate_nat multi30k_nart_nll multi30k_nart_align
multi30k_nart_hints multi30k_hrt_k2 multi30k_hybrid_multihead_h256 multi30k_hybrid_multihead_h256_kd
multi30k_small_12-1 multi30k_cmlm multi30k_small_6-1"
if [ "${1:-}" = --snapshot ]; then
    [ -n "$ARCHIVE" ] || { echo "--snapshot needs RUNS_ARCHIVE" >&2; exit 2; }
    for run in $RUNS; do
        if [ -e "runs/$run/config.json" ] && [ ! -e "runs/$run/packed.json" ] &&
           [ ! -e "$ARCHIVE/$run" ]; then
            kept=$(kept_checkpoints "$run")
            "$PY" -m tfnmt.pack_run --snapshot --run_dir="runs/$run" \
                --output="$ARCHIVE/$run.snapshot" ${kept:+--checkpoints=$kept}
        fi
    done
    exit 0
fi

# The vocabulary every run shares, kept in RUNS_ARCHIVE too: a run resumes only with its own, so
# a new machine takes the archived one (trained again it splits text alike but is not the same
# file: SentencePiece's floating-point training need not give the same pieces on another CPU).
VOCAB=data/vocab/multi30k_ende_8k.model
if [ ! -e "$VOCAB" ] && [ -n "$ARCHIVE" ] && [ -e "$ARCHIVE/vocab/${VOCAB##*/}" ]; then
    mkdir -p data/vocab && cp "$ARCHIVE/vocab/${VOCAB##*/}" "$VOCAB.tmp-$$" && mv "$VOCAB.tmp-$$" "$VOCAB"
    echo "$VOCAB: copied from $ARCHIVE/vocab"
fi
[ -e "$VOCAB" ] || "$PY" -m tfnmt.vocab \
    --input="$DATA/train.en,$DATA/train.de" --model_prefix="${VOCAB%.model}" --vocab_size=8000
if [ -n "$ARCHIVE" ] && [ ! -e "$ARCHIVE/vocab/${VOCAB##*/}" ]; then
    mkdir -p "$ARCHIVE/vocab" && cp "$VOCAB" "$ARCHIVE/vocab/.${VOCAB##*/}.tmp-$$" &&
        mv "$ARCHIVE/vocab/.${VOCAB##*/}.tmp-$$" "$ARCHIVE/vocab/${VOCAB##*/}"
fi
# One command a line: under set -e a failure inside an && list would not stop the script.
train multi30k_small
average multi30k_small
distill multi30k_small
frontier_row multi30k_small teacher
# Every frontier row is committed (session 54), so what the results still lack comes first: the
# ablations, each against its method's step-3,000 weights at an equal budget. The DAT (the
# imitate-NAT learners start from its averaged weights and learn its distilled targets), the three
# imitate-NAT ablations (without L_IL: SoftCopy, UniformCopy; without imitation module: the
# paper's competitor), imitate-NAT itself (its ckpt-3000 is their comparison point; it trains
# on to convergence), the two hint-NART ablations and the hint-NART. Then the runs a replaced
# machine lost after their rows were committed, for the final one-invocation frontier: HRT first
# (its shortlist row is the last one #17 lacks), the Hybrid (MLE, then KD), the 12-1, CMLM and
# the 6-1 (docs/decisions.md, "After a replacement the unmeasured rows train first"). Each run
# this script averages is packed into RUNS_ARCHIVE, so a lost runs/ costs at most the run in
# progress (a folder outside runs/: the repository's results/runs keeps packed runs on the
# machine's disk, git-ignored, and only the vocabulary and distilled targets in git).
for run in multi30k_dat multi30k_imitate_nat_soft multi30k_imitate_nat_uniform \
           multi30k_imitate_nat_plain multi30k_imitate_nat multi30k_nart_nll multi30k_nart_align \
           multi30k_nart_hints multi30k_hrt_k2 multi30k_hybrid_multihead_h256 \
           multi30k_hybrid_multihead_h256_kd multi30k_small_12-1 multi30k_cmlm multi30k_small_6-1; do
    case "$run" in
        *_soft|*_uniform|*_plain|*_nll|*_align)  # ablations: decoded beside their long run
            ablation_done "$run" || train "$run"
            continue;;
        multi30k_imitate_nat|multi30k_nart_hints)
            if ! ablation_done "$run"; then
                train "$run" --train_steps=3000  # the same schedule: resumed == uninterrupted
                ablations "$run"
            fi;;
    esac
    train "$run"
    average "$run"
    name=$(row_name "$run")
    [ -z "$name" ] || frontier_row "$run" "$name"
    [ -z "$name" ] || shortlist_row "$run" "$name"
    if [ "$run" = multi30k_dat ]; then
        distill "$run"  # the imitate-NAT learners, next, learn the DAT's translations
    fi
done
# Every run trained: the one-invocation frontier (configs/multi30k_frontier_benchmark.sh, with
# the picks of the rows, into the folder above FRONTIER_ROWS), under CPU_LOCK; resumable.
if [ -n "$ROWS" ] && ! grep -qs '"complete": true' "$(dirname "$ROWS")/frontier_multi30k.json"
then
    measured "the frontier" env PYTHON="$PY" DATA="$DATA" RESULTS="$(dirname "$ROWS")" \
        ROWS="$ROWS" NO_REPORT=1 bash configs/multi30k_frontier_benchmark.sh || true
fi
echo "all frontier trainings done"
