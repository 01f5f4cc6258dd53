"""Every flag file in configs/ parses with the training flags, builds a valid model and makes
sense as a recipe: warm-up shorter than training, and every run it builds on (--init_from,
--teacher_run, the run that wrote its distilled targets) made by another config with the same
vocabulary."""

import glob
import hashlib
import json
import os
import re
import shutil
import sys

import pytest

from tests.conftest import REPO

# The recipes (each names its run); a flag file without --run_dir is a part other recipes
# include (configs/multi30k_bf16.flags), checked through them.
CONFIGS = sorted(path for path in glob.glob(os.path.join(REPO, "configs", "*.flags"))
                 if "\n--run_dir=" in "\n" + open(path, encoding="utf-8").read())
PARTS = sorted(set(glob.glob(os.path.join(REPO, "configs", "*.flags"))) - set(CONFIGS))
DISTILLED = re.compile(r"data/distilled/(.+)\.train\.\w+$")


def parse(path, **overrides):
    """The training flags a config sets (flag files nest relative to the repository) and the
    (model, data, train) configs they make."""
    from absl import flags

    import tfnmt.train as train

    argv = ["train", f"--flagfile={path}"] + [f"--{k}={v}" for k, v in overrides.items()]
    flag_values = flags.FLAGS
    old_cwd = os.getcwd()
    os.chdir(REPO)
    try:
        flag_values.unparse_flags()
        flag_values(argv)
        values = {name: flag_values[name].value for name in (
            "run_dir", "init_from", "teacher_run", "train_target", "train_distilled", "vocab",
            "target_vocab", "warmup_steps", "train_steps", "d_model", "shape")}
        configs = train.configs_from_flags() if overrides else None
    finally:
        flag_values.unparse_flags()
        os.chdir(old_cwd)
    return values, configs


@pytest.fixture(scope="module")
def recipes():
    """run name -> (config file, its flag values), for every config."""
    from tfnmt.core.config import SHAPES

    out = {}
    for path in CONFIGS:
        values, _ = parse(path)
        values["width"] = values["d_model"] or SHAPES[values["shape"]][0]
        out[os.path.basename(values["run_dir"].rstrip("/"))] = (os.path.basename(path), values)
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_parses_and_builds(path, multi30k_sample):
    from tfnmt.models import build_model

    _, (model, data, train_config) = parse(path, vocab=multi30k_sample["vocab"])
    assert build_model(model).count_params() > 0
    assert data.train_source and train_config.train_steps > 0
    assert train_config.warmup_steps < train_config.train_steps, (
        f"warm-up ({train_config.warmup_steps}) does not end before training "
        f"({train_config.train_steps})")


def test_a_flag_the_run_does_not_read_is_named(multi30k_sample, capsys):
    path = os.path.join(REPO, "configs", "multi30k_small.flags")
    parse(path, vocab=multi30k_sample["vocab"], p_raw=0.5, decoder_hidden=64, kd_lambda=2)
    assert capsys.readouterr().err.strip() == (
        "warning: architecture transformer with objective mle does not read --decoder_hidden, "
        "--kd_lambda, --p_raw (ignored).")


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_runs_a_config_builds_on_exist_with_its_vocabulary(path, recipes):
    values, _ = parse(path)
    needs = {"--init_from": values["init_from"].partition("@")[0],
             "--teacher_run": values["teacher_run"]}
    for flag in ("train_target", "train_distilled"):
        match = DISTILLED.search(values[flag] or "")
        if match:
            needs[f"--{flag} (distilled by)"] = "runs/" + match.group(1)
    for what, run_dir in needs.items():
        if not run_dir:
            continue
        name = os.path.basename(run_dir.rstrip("/"))
        assert name in recipes, f"{what} names {run_dir}, which no config in configs/ makes"
        source, theirs = recipes[name]
        assert (theirs["vocab"], theirs["target_vocab"]) == (values["vocab"],
                                                             values["target_vocab"]), (
            f"{what} {run_dir} ({source}) has another vocabulary")
        if "distilled" in what:  # a teacher at least as wide as its student
            mine = recipes[os.path.basename(values["run_dir"].rstrip("/"))][1]["width"]
            assert theirs["width"] >= mine, (
                f"distilled targets from {run_dir} (d {theirs['width']}) for a d {mine} model")



def script_commands(path):
    """(command, [flag names]) for every `-m tfnmt.<command>` line of a shell script, its
    backslash continuations joined."""
    text = re.sub(r"\\\n", " ", open(path, encoding="utf-8").read())
    out = []
    for line in text.splitlines():
        match = re.search(r"-m (tfnmt\.\w+)(.*)", line)
        if match and not line.lstrip().startswith("#"):
            out.append((match.group(1), re.findall(r"--(\w+)", match.group(2))))
    return out


def test_every_flag_a_script_passes_is_one_its_command_defines():
    from tests.conftest import run_modules

    scripts = sorted(glob.glob(os.path.join(REPO, "configs", "*.sh")))
    uses = {}
    for path in scripts:
        for command, names in script_commands(path):
            uses.setdefault(command, set()).update(
                (os.path.basename(path), name) for name in names if name != "flagfile")
    assert {"tfnmt.benchmark", "tfnmt.shortlist", "tfnmt.distill", "tfnmt.report"} <= set(uses)
    helps = run_modules(*[(command, "--helpfull") for command in sorted(uses)])
    for command, result in zip(sorted(uses), helps):
        defined = set(re.findall(r"^\s+--(?:\[no\])?(\w+)", result.stdout, re.M))
        assert defined, result.stderr[-2000:]
        unknown = sorted(f"{script}: --{name}" for script, name in uses[command]
                         if name not in defined)
        assert not unknown, f"{command} has no such flag: {unknown}"


def test_the_frontier_chain_trains_existing_configs_after_what_they_build_on(recipes):
    """Every run configs/multi30k_frontier.sh names has a config, and it comes after the runs
    its config builds on (init_from, teacher, the run that wrote its distilled targets)."""
    lines = [line for line in open(os.path.join(REPO, "configs", "multi30k_frontier.sh"),
                                   encoding="utf-8") if not line.lstrip().startswith("#")]
    order = []
    trainings = "".join(lines).split("tfnmt.vocab")[-1]  # the chain itself, from the vocabulary
    for name in re.findall(r"(?<![/\w$])(multi30k_[\w.-]+)", trainings):
        if name not in order:
            order.append(name)
    assert order[0] == "multi30k_small", order
    for position, name in enumerate(order):
        assert name in recipes, f"{name} has no config"
        values = recipes[name][1]
        needs = [values["init_from"].partition("@")[0], values["teacher_run"]] + [
            f"runs/{m.group(1)}" for m in [DISTILLED.search(values["train_target"] or ""),
                                           DISTILLED.search(values["train_distilled"] or "")] if m]
        for run in filter(None, needs):
            base = os.path.basename(run.rstrip("/"))
            assert base in order[:position], f"{name} needs {base} first"


@pytest.mark.parametrize("path", PARTS, ids=os.path.basename)
def test_every_part_is_included_by_a_recipe(path):
    include = f"--flagfile=configs/{os.path.basename(path)}"
    assert any(include in open(c, encoding="utf-8").read() for c in CONFIGS), path


class Chain:
    """configs/multi30k_frontier.sh in a working directory of its own (configs/ and a
    vocabulary), with PYTHON a stand-in that records each command and then runs `script` (sh:
    making what the chain checks for, or stopping it with exit 143 as a stopped training)."""

    def __init__(self, tmp_path, script, cpu_flags=None):
        self.work, self.archive = tmp_path / "work", tmp_path / "archive"
        (self.work / "data" / "vocab").mkdir(parents=True)
        (self.work / "data" / "vocab" / "multi30k_ende_8k.model").write_text("")
        os.symlink(os.path.join(REPO, "configs"), self.work / "configs")
        self.log = tmp_path / "commands.txt"
        self.env = {**os.environ, "PYTHON": str(tmp_path / "python")}
        (tmp_path / "python").write_text(f'#!/bin/sh\necho "$*" >> {self.log}\n{script}\n')
        (tmp_path / "python").chmod(0o755)
        if cpu_flags:
            (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {cpu_flags}\n")
            self.env["CPUINFO"] = str(tmp_path / "cpuinfo")

    def run_json(self, run, name, text):
        """Writes runs/<run>/<name> (a run's config.json, say)."""
        path = self.work / "runs" / run / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def __call__(self, *args, archive=True, code=143):
        """Runs the chain; `code` is its exit status (143: the stand-in stopped a training)."""
        import subprocess

        env = dict(self.env, **({"RUNS_ARCHIVE": str(self.archive)} if archive else {}))
        result = subprocess.run(["bash", "configs/multi30k_frontier.sh", *args], cwd=self.work,
                                text=True, capture_output=True, env=env)
        assert result.returncode == code, result.stderr
        return result.stdout, (self.log.read_text().splitlines() if self.log.exists() else [])


DISTILL_THEN_STOP = ('case "$*" in *tfnmt.distill*) mkdir -p data/distilled; touch '
                     'data/distilled/multi30k_small.train.de;; *tfnmt.train*) exit 143;; esac')


@pytest.mark.parametrize("cpu_flags,precision", [
    ("fpu avx2 avx512f amx_bf16 amx_tile", ""),  # the DAT's recipe includes the bfloat16 flags
    ("fpu avx2 fma", " --mixed_precision=float32")])
def test_the_frontier_chain_copies_packed_runs_in_and_does_not_train_them(tmp_path, cpu_flags,
                                                                          precision):
    """RUNS_ARCHIVE: a packed run is copied into runs/ and skipped; the rest is trained, in
    the recipes' bfloat16 only on a CPU with bfloat16 instructions."""
    chain = Chain(tmp_path, DISTILL_THEN_STOP, cpu_flags)
    packed = chain.archive / "multi30k_small"
    (packed / "checkpoints" / "averaged").mkdir(parents=True)
    (packed / "checkpoints" / "averaged" / "checkpoint").write_text("")
    (packed / "packed.json").write_text("{}")
    out, commands = chain()
    assert "runs/multi30k_small: copied from" in out
    assert (chain.work / "runs" / "multi30k_small" / "packed.json").exists()
    assert [c.split()[1] for c in commands] == ["tfnmt.distill", "tfnmt.train"], commands
    assert "--teacher_run=runs/multi30k_small" in commands[0]
    # the first run after the teacher: the DAT, which the imitate-NAT ablations start from
    dat = "--flagfile=configs/multi30k_dat.flags"
    assert commands[1].endswith(dat + precision)
    # A run that exists keeps the precision it started with, whatever this CPU has.
    chain.run_json("multi30k_dat", "config.json",
                   '{"train": {"mixed_precision": "mixed_bfloat16"}}')
    assert chain()[1][-1].endswith(dat)


@pytest.mark.parametrize("cpu_flags,precision", [
    ("fpu avx2 avx512f avx512_bf16", ""), ("fpu avx2 fma", " --mixed_precision=float32")])
def test_the_frontier_chain_finds_the_bfloat16_flags_a_recipe_includes_through_another(
        tmp_path, cpu_flags, precision):
    """The SoftCopy ablation's recipe includes imitate-NAT's, which includes the bfloat16
    flags: the chain does not pass them a second time."""
    chain = Chain(tmp_path, 'case "$*" in *tfnmt.train*) exit 143;; esac', cpu_flags)
    for run in ("multi30k_small", "multi30k_dat"):
        chain.run_json(run, "packed.json", "{}")
        chain.run_json(run, "checkpoints/averaged/checkpoint", "")
        (chain.work / "data" / "distilled").mkdir(parents=True, exist_ok=True)
        (chain.work / "data" / "distilled" / f"{run}.train.de").write_text("")
    assert chain(archive=False)[1] == [
        "-m tfnmt.train --flagfile=configs/multi30k_imitate_nat_soft.flags" + precision]


@pytest.mark.parametrize("cpu_flags,existing,added", [
    ("fpu avx2 avx512f avx512_bf16", None, " --flagfile=configs/multi30k_bf16.flags"),
    ("fpu avx2 fma", None, " --mixed_precision=float32"),
    # a run keeps its precision: float32 on a bfloat16 CPU, bfloat16 on one without
    ("fpu avx2 avx512f amx_bf16", "float32", " --mixed_precision=float32"),
    ("fpu avx2 fma", "mixed_bfloat16", " --flagfile=configs/multi30k_bf16.flags")])
def test_the_frontier_chain_trains_the_teacher_in_bfloat16_only_on_a_bfloat16_cpu(
        tmp_path, multi30k_sample, cpu_flags, existing, added):
    """The teacher's recipe (a default for any hardware) does not include the bfloat16 flags;
    the chain adds them, and keeps an existing run's precision."""
    chain = Chain(tmp_path, "exit 143", cpu_flags)
    if existing:
        chain.run_json("multi30k_small", "config.json",
                       '{"train": {"mixed_precision": "%s"}}' % existing)
    assert chain(archive=False)[1] == [
        "-m tfnmt.train --flagfile=configs/multi30k_small.flags" + added]
    # what the teacher then trains with: the command line's later flag file wins
    extra = dict([added.strip()[2:].split("=", 1)])
    _, (_, _, train) = parse(os.path.join(REPO, "configs", "multi30k_small.flags"),
                             vocab=multi30k_sample["vocab"], **extra)
    if "bf16" in added:
        assert (train.mixed_precision, train.xla, train.xla_elementwise) == (
            "mixed_bfloat16", False, True)
    else:
        assert (train.mixed_precision, train.xla) == ("float32", True)


def test_the_frontier_chain_packs_each_run_it_averages_into_the_archive(tmp_path):
    chain = Chain(tmp_path, DISTILL_THEN_STOP.replace("*tfnmt.train*)",
                                                      "*multi30k_small.flags*) ;; *tfnmt.train*)"))
    chain.run_json("multi30k_small", "checkpoints/averaged/checkpoint", "")
    chain.run_json("multi30k_small", "config.json", '{"train": {"mixed_precision": "float32"}}')
    (chain.archive / "multi30k_small.snapshot").mkdir(parents=True)  # an older snapshot of it
    (chain.archive / "multi30k_small.snapshot" / "snapshot.json").write_text("{}")
    _, commands = chain()
    assert [c.split()[1:3] for c in commands[:3]] == [
        ["tfnmt.train", "--flagfile=configs/multi30k_small.flags"],
        ["tfnmt.pack_run", "--run_dir=runs/multi30k_small"],
        ["tfnmt.distill", "--teacher_run=runs/multi30k_small"]], commands
    assert commands[1].endswith(f"--output={chain.archive}/multi30k_small --checkpoints=averaged")
    # pack_run is a stand-in; the snapshot is gone
    assert sorted(os.listdir(chain.archive)) == ["distilled", "vocab"]


def test_the_frontier_chain_keeps_distilled_targets_in_the_archive_and_takes_them_from_there(
        tmp_path):
    """A teacher's distilled targets are archived gzipped with a digest of its averaged weights;
    a new machine with those weights copies them in instead of distilling again (its students
    train on the same targets), a teacher trained again distils again and replaces them."""
    import gzip

    chain = Chain(tmp_path, 'case "$*" in *tfnmt.distill*) mkdir -p data/distilled; '
                            'cat runs/multi30k_small/checkpoints/averaged/ckpt-9.data-00000-of-00001'
                            ' > data/distilled/multi30k_small.train.de;; '
                            '*tfnmt.train*) exit 143;; esac')
    chain.run_json("multi30k_small", "packed.json", "{}")  # the teacher, averaged and packed
    chain.run_json("multi30k_small", "checkpoints/averaged/checkpoint", "")
    weights = "checkpoints/averaged/ckpt-9.data-00000-of-00001"
    chain.run_json("multi30k_small", weights, "ein Hund\n")
    (chain.archive / "multi30k_small").mkdir(parents=True)
    _, commands = chain()
    assert [c.split()[1] for c in commands] == ["tfnmt.distill", "tfnmt.train"], commands
    kept = chain.archive / "distilled" / "multi30k_small.train.de.gz"
    assert gzip.decompress(kept.read_bytes()) == b"ein Hund\n"
    digest = hashlib.sha256(b"ein Hund\n").hexdigest()[:16]
    assert (chain.archive / "distilled" / "multi30k_small.train.de.gz.teacher").read_text() == (
        digest + "\n")
    distilled = chain.work / "data" / "distilled" / "multi30k_small.train.de"

    def new_machine():
        shutil.rmtree(distilled.parent)
        chain.log.unlink()
        return chain()

    out, commands = new_machine()  # the same teacher, copied in from the archive
    assert f"copied from {kept}" in out
    assert [c.split()[1] for c in commands] == ["tfnmt.train"], commands
    assert distilled.read_bytes() == b"ein Hund\n"
    assert sorted(os.listdir(chain.archive / "distilled")) == [
        "multi30k_small.train.de.gz", "multi30k_small.train.de.gz.teacher"]
    chain.run_json("multi30k_small", weights, "eine Katze\n")  # the teacher trained again
    out, commands = new_machine()
    assert "copied from" not in out and "distilling again" in out
    assert [c.split()[1] for c in commands] == ["tfnmt.distill", "tfnmt.train"], commands
    assert distilled.read_bytes() == gzip.decompress(kept.read_bytes()) == b"eine Katze\n"
    assert (chain.archive / "distilled" / "multi30k_small.train.de.gz.teacher").read_text() == (
        hashlib.sha256(b"eine Katze\n").hexdigest()[:16] + "\n")
    assert sorted(os.listdir(chain.archive / "distilled")) == [
        "multi30k_small.train.de.gz", "multi30k_small.train.de.gz.teacher"]


def test_the_frontier_chain_keeps_its_vocabulary_in_the_archive_and_takes_it_from_there(
        tmp_path):
    """The first machine trains the vocabulary and archives it; a new machine copies it in
    (runs resume only with the vocabulary they began with) instead of training another."""
    chain = Chain(tmp_path, 'case "$*" in *tfnmt.vocab*) echo first > '
                            'data/vocab/multi30k_ende_8k.model;; *tfnmt.train*) exit 143;; esac')
    vocab = chain.work / "data" / "vocab" / "multi30k_ende_8k.model"
    vocab.unlink()
    _, commands = chain()
    assert [c.split()[1] for c in commands] == ["tfnmt.vocab", "tfnmt.train"], commands
    archived = chain.archive / "vocab" / "multi30k_ende_8k.model"
    assert archived.read_text() == "first\n"
    # A new machine: no data/, the archive's vocabulary copied in, none trained.
    shutil.rmtree(chain.work / "data")
    chain.log.unlink()
    out, commands = chain()
    assert f"copied from {chain.archive}/vocab" in out
    assert [c.split()[1] for c in commands] == ["tfnmt.train"], commands
    assert vocab.read_text() == "first\n" and archived.read_text() == "first\n"
    assert sorted(os.listdir(chain.archive / "vocab")) == ["multi30k_ende_8k.model"]


def test_the_frontier_chain_resumes_a_snapshot_of_a_run_in_progress(tmp_path):
    """A run kept in RUNS_ARCHIVE as <run>.snapshot (a machine ago) is copied in and resumed."""
    chain = Chain(tmp_path, "exit 143")
    snapshot = chain.archive / "multi30k_small.snapshot"
    snapshot.mkdir(parents=True)
    (snapshot / "snapshot.json").write_text('{"step": 2500}')
    (snapshot / "config.json").write_text('{"train": {"mixed_precision": "float32"}}')
    out, commands = chain()
    assert f"runs/multi30k_small: copied from {snapshot}" in out
    assert (chain.work / "runs" / "multi30k_small" / "snapshot.json").read_text() == (
        '{"step": 2500}')
    assert snapshot.exists()  # kept until the run is packed
    # resumed with the precision it started with, whatever this CPU has
    assert commands == [
        "-m tfnmt.train --flagfile=configs/multi30k_small.flags --mixed_precision=float32"]


def test_the_frontier_chain_snapshots_each_run_not_yet_packed(tmp_path):
    """--snapshot (at a session's end, the chain stopped): every run in runs/ that is not packed
    in RUNS_ARCHIVE is snapshot there, with the training checkpoints the ablations need."""
    chain = Chain(tmp_path, "exit 0")
    for run in ("multi30k_small", "multi30k_small_6-1", "multi30k_nart_hints", "mine"):
        chain.run_json(run, "config.json", "{}")
    (chain.archive / "multi30k_small").mkdir(parents=True)  # packed: not snapshot again
    _, commands = chain("--snapshot", code=0)
    archive = chain.archive
    assert commands == [
        f"-m tfnmt.pack_run --snapshot --run_dir=runs/multi30k_nart_hints "
        f"--output={archive}/multi30k_nart_hints.snapshot --checkpoints=ckpt-3000",
        f"-m tfnmt.pack_run --snapshot --run_dir=runs/multi30k_small_6-1 "
        f"--output={archive}/multi30k_small_6-1.snapshot"]
    # without an archive to keep them in, one clear line
    _, again = chain("--snapshot", archive=False, code=2)
    assert again == commands


def test_the_frontier_chain_snapshots_every_run_it_trains(tmp_path):
    """The --snapshot list is the chain's own: a stand-in for which every training converges at
    once runs the whole chain, and the runs it trains are exactly those --snapshot looks for."""
    chain = Chain(tmp_path, 'case "$*" in *tfnmt.distill*) mkdir -p data/distilled; '
                            'for a in "$@"; do case "$a" in --output=*) touch "${a#--output=}";; '
                            'esac; done;; esac')
    out, commands = chain(code=0)
    assert "all frontier trainings done" in out
    # the DAT distils the training source once averaged, before imitate-NAT learns from it
    distilled = [i for i, c in enumerate(commands) if "tfnmt.distill" in c]
    assert [commands[i].split()[2] for i in distilled] == [
        "--teacher_run=runs/multi30k_small", "--teacher_run=runs/multi30k_dat"]
    order = [next(i for i, c in enumerate(commands) if f"configs/{r}.flags" in c)
             for r in ("multi30k_dat", "multi30k_imitate_nat")]
    assert order[0] < distilled[1] < order[1]
    trained = [c.split("--flagfile=configs/")[1].split(".flags")[0] for c in commands
               if "tfnmt.train" in c]
    script = open(os.path.join(REPO, "configs", "multi30k_frontier.sh"), encoding="utf-8").read()
    listed = script.split('RUNS="')[1].split('"')[0].split()
    assert list(dict.fromkeys(trained)) == listed  # the ablations' long runs: to 3,000, then on
    assert [r for r in trained if trained.count(r) == 2] == [
        "multi30k_imitate_nat", "multi30k_imitate_nat", "multi30k_nart_hints",
        "multi30k_nart_hints"]
    packed = [c for c in commands if "tfnmt.pack_run" in c]
    assert [c for c in packed if "ckpt-3000" in c] == [
        f"-m tfnmt.pack_run --run_dir=runs/{r} --output={chain.archive}/{r} "
        "--checkpoints=averaged,ckpt-3000" for r in ("multi30k_imitate_nat", "multi30k_nart_hints")]


def test_the_frontier_chain_benchmarks_each_averaged_run_into_a_row_file(tmp_path):
    """FRONTIER_ROWS: the teacher once distilled, then each run once averaged, is timed beside the
    teacher into <rows>/<row name>.json under the CPU_LOCK lock; an interrupted row resumes, a
    complete one is kept, a failed one does not stop the trainings, a stopped one stops them."""
    rows, lock = tmp_path / "rows", tmp_path / "cpu.lock"
    chain = Chain(tmp_path, 'case "$*" in *tfnmt.distill*) mkdir -p data/distilled; '
                            'touch data/distilled/multi30k_small.train.de '
                            'data/distilled/multi30k_dat.train.de;; '
                            '*tfnmt.benchmark*) flock -n "$CPU_LOCK" true || echo locked >> '
                            f'{tmp_path}/held; exit "${{BENCHMARK_EXIT:-0}}";; '
                            '*tfnmt.train*imitate_nat*) exit 143;; esac')
    chain.env.update(FRONTIER_ROWS=str(rows), CPU_LOCK=str(lock))
    _, commands = chain()
    benchmarks = [c for c in commands if "tfnmt.benchmark" in c]
    # the teacher, then the DAT (the imitate-NAT ablations, next, are no rows and stop here)
    named = ["teacher", "dat"]
    assert [c.split("--output=")[1] for c in benchmarks] == [f"{rows}/{n}" for n in named]
    assert "--runs=teacher=runs/multi30k_small --" in benchmarks[0]
    assert "--runs=teacher=runs/multi30k_small,dat=runs/multi30k_dat " in benchmarks[1]
    assert all("--checkpoint=averaged" in c and "--beam_sizes=1,4,5" in c for c in benchmarks)
    assert (tmp_path / "held").read_text() == "locked\n" * 2  # each ran under the lock
    assert commands.index(benchmarks[1]) < next(
        i for i, c in enumerate(commands) if "multi30k_imitate_nat_soft.flags" in c)

    def benchmarks_again(**env):
        chain.log.unlink()
        chain.env.update(env)
        return [c for c in chain()[1] if "tfnmt.benchmark" in c]

    (rows / "teacher.json").parent.mkdir(exist_ok=True)
    for name in named[:-1]:
        (rows / f"{name}.json").write_text('{"values": {"complete": true}}')
    (rows / "dat.json").write_text(json.dumps({  # interrupted
        "provenance": {"command": "python -m tfnmt.benchmark "
                                  "--runs=teacher=runs/multi30k_small,dat=runs/multi30k_dat"},
        "values": {"complete": False}}))
    again = benchmarks_again()
    assert len(again) == 1 and again[0].endswith(f"--output={rows}/dat --resume")
    failed = benchmarks_again(BENCHMARK_EXIT="1")  # reported; the ablations still train
    assert len(failed) == 1 and "multi30k_imitate_nat_soft.flags" in chain.log.read_text()
    chain.log.unlink()
    chain.env["BENCHMARK_EXIT"] = "143"  # stopped (SIGTERM): the chain stops there
    _, commands = chain()
    assert "tfnmt.benchmark" in commands[-1] and not any("imitate" in c for c in commands)


def scoring_stand_in(bleu_cases, stop, more=""):
    """A stand-in python for the chain's picks on val: it runs `python -c`, writes both distilled
    targets, answers tfnmt.evaluate with the BLEU `bleu_cases` (shell case items over each flag)
    give, runs the case items `more` over its arguments, and stops (exit 143) at the training of
    the run `stop`."""
    return ('case "$*" in -c*) exec ' + sys.executable + ' "$@";; ' + more
            + '*tfnmt.distill*) mkdir -p data/distilled; '
            'touch data/distilled/multi30k_small.train.de data/distilled/multi30k_dat.train.de;; '
            '*tfnmt.evaluate*) for a in "$@"; do case "$a" in --result=*) result=${a#--result=};; '
            + bleu_cases + ' esac; done; echo "{\\"values\\": {\\"bleu\\": $bleu}}" > "$result";; '
            f'*tfnmt.train*{stop}.flags*) exit 143;; esac')


def test_the_frontier_chain_picks_a_nats_candidate_rule_on_val(tmp_path):
    """A NAT's row keeps the length candidate of the rule with the higher val BLEU (a tie:
    total, the hint paper's), each scored once at the paper's B (9 lengths for the hint-NART, 7
    for imitate-NAT), the pick kept beside the row until the run's weights change; imitate-NAT
    is timed beside its DAT."""
    rows = tmp_path / "rows"
    chain = Chain(tmp_path, scoring_stand_in('--nat_selection=total) bleu=$TOTAL_BLEU;; '
                                             '--nat_selection=normalized) bleu=31.5;;',
                                             stop="multi30k_hybrid_multihead_h256"))
    chain.env.update(FRONTIER_ROWS=str(rows), TOTAL_BLEU="31.2")
    _, commands = chain()
    evaluations = [c for c in commands if "tfnmt.evaluate" in c]
    assert len(evaluations) == 4 and all(
        "--checkpoint=averaged" in c and "/val.en " in c for c in evaluations)
    rows_timed = [c for c in commands if "tfnmt.benchmark" in c and f"--output={rows}/" in c]
    for run, row, halfwidth in [("multi30k_imitate_nat", "imitate_nat", 3),
                                ("multi30k_nart_hints", "hint_nart", 4)]:
        mine = [c for c in evaluations if f"--run_dir=runs/{run} " in c]
        assert len(mine) == 2 and all(f"--length_halfwidth={halfwidth} " in c for c in mine)
        benchmark = next(c for c in rows_timed if f"{row}=" in c)
        assert benchmark.endswith(f"--nat_selection={row}=normalized --collapse_repeats")
    imitate = next(c for c in rows_timed if "imitate_nat=" in c)
    assert ("--runs=teacher=runs/multi30k_small,dat=runs/multi30k_dat,"
            "imitate_nat=runs/multi30k_imitate_nat " in imitate)
    picks = rows / "nat_selection"
    assert (picks / "hint_nart.txt").read_text() == "normalized\n"
    assert json.loads((picks / "hint_nart.val.total.json").read_text())["values"]["bleu"] == 31.2
    assert not list(rows.glob("*.json"))  # the rows' folder keeps benchmark files only
    chain.log.unlink()  # the pick is kept: not scored again
    assert not [c for c in chain()[1] if "tfnmt.evaluate" in c]
    shutil.rmtree(picks)
    chain.env["TOTAL_BLEU"] = "31.5"  # a tie
    chain()
    assert (picks / "hint_nart.txt").read_text() == "total\n"
    assert (picks / "imitate_nat.txt").read_text() == "total\n"
    # imitate-NAT trained again (a new machine): its own weights pick again, the hint-NART's not
    chain.run_json("multi30k_imitate_nat", "checkpoints/averaged/ckpt-1.data-00000-of-00001", "w")
    chain.log.unlink()
    chain.env["TOTAL_BLEU"] = "31.2"
    evaluations = [c for c in chain()[1] if "tfnmt.evaluate" in c]
    assert len(evaluations) == 2 and all("runs/multi30k_imitate_nat " in c for c in evaluations)
    assert (picks / "imitate_nat.txt").read_text() == "normalized\n"
    assert (picks / "hint_nart.txt").read_text() == "total\n"
    assert (picks / "imitate_nat.weights").read_text() == (
        hashlib.sha256(b"w").hexdigest()[:16] + "\n")


def converging_chain(tmp_path, stop="none"):
    """The chain with FRONTIER_ROWS (tmp/rows) and CPU_LOCK, every training converging at once
    (stopping at the run `stop`): the HRT's best checkpoint wins on val, the NATs' normalized
    rule; tfnmt.benchmark notes in tmp/held when it runs outside the lock, exits with
    BENCHMARK_EXIT if set, else writes a complete file at its --output; tfnmt.shortlist exits
    with SHORTLIST_EXIT if set, else writes the run's lists."""
    more = ('*tfnmt.shortlist*) [ -z "$SHORTLIST_EXIT" ] || exit "$SHORTLIST_EXIT"; '
            'mkdir -p "${3#--run_dir=}"; touch "${3#--run_dir=}/shortlist.npz";; '
            '*tfnmt.benchmark*) flock -n "$CPU_LOCK" true || echo locked >> '
            f'{tmp_path}/held; [ -z "$BENCHMARK_EXIT" ] || exit "$BENCHMARK_EXIT"; '
            'for a in "$@"; do case "$a" in --output=*) '
            'echo \'{"values": {"complete": true}}\' > "${a#--output=}.json";; esac; done;; ')
    chain = Chain(tmp_path, scoring_stand_in('--checkpoint=best) bleu=38.4;; '
                                             '--nat_selection=total) bleu=31.0;; '
                                             '--nat_selection=normalized) bleu=31.5;; '
                                             '--checkpoint=averaged) bleu=${bleu:-38.18};;',
                                             stop=stop, more=more))
    chain.run_json("multi30k_hrt_k2", "checkpoints/best/checkpoint", "")
    chain.env.update(FRONTIER_ROWS=str(tmp_path / "rows"), CPU_LOCK=str(tmp_path / "cpu.lock"),
                     SHORTLIST_EXIT="", BENCHMARK_EXIT="")
    return chain


def test_the_frontier_chain_decodes_the_ablations_at_their_long_runs_step_3000(tmp_path):
    """Each long run (imitate-NAT, hint-NART) trains to step 3,000, its ablation table is decoded
    (configs/multi30k_ablation_benchmark.sh, under CPU_LOCK, into the folder above the rows:
    its step-3,000 weights beside the 3,000-step ablations), then it trains on to convergence.
    Once a table is complete, its ablation runs and the stop at 3,000 are skipped; a stopped
    table stops the chain."""
    chain = converging_chain(tmp_path, stop="multi30k_hybrid_multihead_h256")
    _, commands = chain()

    def trained(c):
        return c.split("--flagfile=configs/")[1].split(".flags")[0] if "tfnmt.train" in c else None

    for table, long_run, ablation_runs, ablation_names in [
            ("imitate_nat", "multi30k_imitate_nat",
             ["multi30k_imitate_nat_soft", "multi30k_imitate_nat_uniform",
              "multi30k_imitate_nat_plain"],
             ["imitate_nat_plain", "imitate_nat_soft", "imitate_nat_uniform"]),
            ("nart", "multi30k_nart_hints", ["multi30k_nart_nll", "multi30k_nart_align"],
             ["nart_align", "nart_nll"])]:
        out = f"--output={tmp_path}/ablations_{table}_multi30k"
        decoded = [i for i, c in enumerate(commands) if "tfnmt.benchmark" in c and out in c]
        assert len(decoded) == 1, commands
        ablation = commands[decoded[0]]
        runs = ablation.split("--runs=")[1].split()[0].split(",")
        assert runs[-1 if table == "nart" else 0].endswith(
            f"=runs/{long_run}@runs/{long_run}/checkpoints/ckpt-3000")
        assert sorted(r.split("=")[0] for r in runs if "ckpt-3000" not in r) == ablation_names
        long_trainings = [i for i, c in enumerate(commands) if trained(c) == long_run]
        assert len(long_trainings) == 2
        assert commands[long_trainings[0]].endswith(" --train_steps=3000")
        assert "--train_steps" not in commands[long_trainings[1]]
        last_ablation = max(i for i, c in enumerate(commands) if trained(c) in ablation_runs)
        assert last_ablation < long_trainings[0] < decoded[0] < long_trainings[1]
    assert (tmp_path / "held").read_text().count("locked") == sum(
        "tfnmt.benchmark" in c for c in commands)  # the rows and both tables, each under the lock

    chain.log.unlink()  # both tables complete: no ablation trained or decoded again
    commands = chain()[1]
    assert not [c for c in commands if "train_steps" in c or "ablations_" in c
                or trained(c) in ("multi30k_imitate_nat_soft", "multi30k_imitate_nat_plain",
                                  "multi30k_nart_nll")]
    assert [trained(c) for c in commands if trained(c) in ("multi30k_imitate_nat",
                                                           "multi30k_nart_hints")] == [
        "multi30k_imitate_nat", "multi30k_nart_hints"]

    (tmp_path / "ablations_nart_multi30k.json").unlink()
    chain.log.unlink()
    chain.env["BENCHMARK_EXIT"] = "143"  # the table stopped (SIGTERM): the chain stops there
    commands = chain()[1]
    assert "ablations_nart_multi30k" in commands[-1]


def test_the_frontier_chain_measures_each_students_shortlist_after_its_row(tmp_path):
    """After the rows of the Hybrid, HRT and both NATs, each student's shortlist (and the
    teacher's, once) is built and the student timed with and without it beside the teacher,
    with its row's weights and candidate rule, into the folder above the rows, under CPU_LOCK;
    a complete file is kept, a failed build skips only its row."""
    chain, rows = converging_chain(tmp_path), tmp_path / "rows"
    _, commands = chain(code=0)
    built = [c.split("--run_dir=runs/")[1] for c in commands if "tfnmt.shortlist" in c]
    assert built == ["multi30k_small", "multi30k_imitate_nat", "multi30k_nart_hints",
                     "multi30k_hrt_k2", "multi30k_hybrid_multihead_h256_kd"]  # the teacher once
    timed = {c.split("--output=")[1].split()[0]: (i, c) for i, c in enumerate(commands)
             if "tfnmt.benchmark" in c}
    expected = {"imitate_nat": ("imitate_nat=runs/multi30k_imitate_nat", "0,3"),
                "hint_nart": ("hint_nart=runs/multi30k_nart_hints", "0,4"),
                "hybrid": ("hybrid=runs/multi30k_hybrid_multihead_h256_kd", "0"),
                "hrt": ("hrt=runs/multi30k_hrt_k2@best", "0")}
    assert sorted(k for k in timed if "shortlist_" in k) == sorted(
        f"{tmp_path}/shortlist_{name}_multi30k" for name in expected)
    for name, (student, halfwidths) in expected.items():
        i, command = timed[f"{tmp_path}/shortlist_{name}_multi30k"]
        assert f"--runs=teacher=runs/multi30k_small,{student} " in command
        assert f"--length_halfwidths={halfwidths} --shortlist " in command
        assert ("--nat_selection=" in command) == (halfwidths != "0")
        if halfwidths != "0":
            assert command.endswith(f"--nat_selection={name}=normalized")
        assert timed[f"{rows}/{name}"][0] < i  # after the student's row
    assert (tmp_path / "held").read_text().count("locked") == len(timed)

    chain.log.unlink()  # complete: kept
    assert not [c for c in chain(code=0)[1] if "shortlist" in c]
    for name in ("shortlist_hrt_multi30k.json", "shortlist_hybrid_multi30k.json"):
        (tmp_path / name).unlink()
    (chain.work / "runs" / "multi30k_hrt_k2" / "shortlist.npz").unlink()
    chain.log.unlink()
    chain.env["SHORTLIST_EXIT"] = "1"  # the HRT's lists fail: its row alone is skipped
    commands = chain(code=0)[1]
    assert [c.split("--output=")[1].split()[0] for c in commands if "shortlist" in c and
            "tfnmt.benchmark" in c] == [f"{tmp_path}/shortlist_hybrid_multi30k"]


def test_the_frontier_chain_ends_with_the_one_invocation_frontier(tmp_path):
    """Once every run is trained, the chain times the frontier in one invocation
    (configs/multi30k_frontier_benchmark.sh) with the checkpoints and candidate rules picked
    for the rows, under CPU_LOCK, into the folder above the rows, without a report (the
    session's); everything complete, a second pass times nothing."""
    chain = converging_chain(tmp_path)
    _, commands = chain(code=0)
    benchmarks = [c for c in commands if "tfnmt.benchmark" in c]
    last = benchmarks[-1]
    assert last == commands[-1] and f"--output={tmp_path}/frontier_multi30k" in last
    runs = last.split("--runs=")[1].split()[0].split(",")
    assert "hrt=runs/multi30k_hrt_k2@best" in runs and "at_12-1=runs/multi30k_small_12-1" in runs
    assert "--nat_selection=hint_nart=normalized,imitate_nat=normalized " in last
    assert not [c for c in commands if "tfnmt.report" in c]
    assert (tmp_path / "held").read_text().count("locked") == len(benchmarks)
    chain.log.unlink()
    assert not [c for c in chain(code=0)[1] if "tfnmt.benchmark" in c]


def test_the_frontier_chain_times_a_students_best_checkpoint_when_it_wins_on_val(tmp_path):
    """An autoregressive student's row times its averaged or its best weights, whichever has
    the higher val BLEU (beam 4, length penalty 1.0; a tie keeps the average), scored once
    until the averaged weights change; its best checkpoint is packed beside the average. The
    teacher keeps its average (the students learn from it), and a run without a best
    checkpoint is not scored. A partial row begun with the weights a new pick drops is set
    aside and begun again; one of the same weights resumes."""
    rows = tmp_path / "rows"
    chain = Chain(tmp_path, scoring_stand_in('--checkpoint=best) bleu=$BEST_BLEU;; '
                                             '--checkpoint=averaged|--nat_selection=*) '
                                             'bleu=38.18;;', stop="multi30k_cmlm"))
    for run in ("multi30k_small", "multi30k_small_12-1", "multi30k_hrt_k2"):
        chain.run_json(run, "checkpoints/best/checkpoint", "")
    chain.env.update(FRONTIER_ROWS=str(rows), BEST_BLEU="38.4")
    _, commands = chain()
    evaluations = [c for c in commands if "tfnmt.evaluate" in c and "--nat_selection" not in c]
    assert [c.split()[2] for c in evaluations] == [
        "--run_dir=runs/multi30k_hrt_k2", "--run_dir=runs/multi30k_hrt_k2",
        "--run_dir=runs/multi30k_small_12-1", "--run_dir=runs/multi30k_small_12-1"], evaluations
    assert all("/val.en " in c and "--beam_size=4 --length_penalty=1.0 " in c
               for c in evaluations)
    benchmarks = {c.split("--output=")[1].split()[0]: c for c in commands
                  if "tfnmt.benchmark" in c}
    assert "--runs=teacher=runs/multi30k_small --" in benchmarks[f"{rows}/teacher"]
    assert "hybrid=runs/multi30k_hybrid_multihead_h256_kd --" in benchmarks[f"{rows}/hybrid"]
    assert "at_12-1=runs/multi30k_small_12-1@best --" in benchmarks[f"{rows}/at_12-1"]
    assert "hrt=runs/multi30k_hrt_k2@best --" in benchmarks[f"{rows}/hrt"]
    packs = {c.split()[2]: c.split("--checkpoints=")[1] for c in commands
             if "tfnmt.pack_run" in c}
    assert packs["--run_dir=runs/multi30k_hrt_k2"] == "averaged,best"
    assert packs["--run_dir=runs/multi30k_hybrid_multihead_h256_kd"] == "averaged"
    assert (rows / "checkpoint" / "hrt.txt").read_text() == "best\n"
    chain.log.unlink()  # the pick is kept: not scored again
    assert not [c for c in chain()[1] if "tfnmt.evaluate" in c]
    # the HRT trained again: its weights pick again, and a tie keeps the average
    chain.run_json("multi30k_hrt_k2", "checkpoints/averaged/ckpt-1.data-00000-of-00001", "w")
    chain.env["BEST_BLEU"] = "38.18"
    chain.log.unlink()
    # partial rows: the HRT's timed the best checkpoint the new pick drops, the 12-1's its pick
    partial = {"hrt": "teacher=runs/multi30k_small,hrt=runs/multi30k_hrt_k2@best",
               "at_12-1": "teacher=runs/multi30k_small,at_12-1=runs/multi30k_small_12-1@best"}
    for row, timed in partial.items():
        (rows / f"{row}.json").write_text(json.dumps({"provenance": {
            "command": f"python -m tfnmt.benchmark --runs={timed} --rounds=2"}}))
        (rows / f"{row}.md").write_text("partial")
    commands = chain()[1]
    assert [c.split()[2] for c in commands if "tfnmt.evaluate" in c] == [
        "--run_dir=runs/multi30k_hrt_k2"] * 2
    hrt = next(c for c in commands if "tfnmt.benchmark" in c and "hrt=" in c)
    assert "hrt=runs/multi30k_hrt_k2 --" in hrt and "--resume" not in hrt
    aside = sorted((rows / "set_aside").iterdir())
    assert [p.suffix for p in aside] == [".json", ".md"] and aside[0].name.startswith("hrt.")
    assert json.loads(aside[0].read_text())["provenance"]["command"].endswith(
        f"--runs={partial['hrt']} --rounds=2")
    assert not (rows / "hrt.json").exists()
    at_12_1 = next(c for c in commands if "tfnmt.benchmark" in c and "at_12-1=" in c)
    assert "--resume" in at_12_1 and (rows / "at_12-1.json").exists()
    assert (rows / "checkpoint" / "at_12-1.txt").read_text() == "best\n"


def test_the_chains_float32_override_keeps_each_bfloat16_recipes_xla_settings(multi30k_sample):
    """What configs/multi30k_frontier.sh adds on a CPU without bfloat16 instructions."""
    bf16 = [p for p in CONFIGS if "configs/multi30k_bf16.flags" in open(p, encoding="utf-8").read()]
    assert bf16
    for path in bf16:
        _, (_, _, as_written) = parse(path, vocab=multi30k_sample["vocab"])
        _, (_, _, overridden) = parse(path, vocab=multi30k_sample["vocab"],
                                      mixed_precision="float32")
        assert as_written.mixed_precision == "mixed_bfloat16", path
        assert overridden.mixed_precision == "float32", path
        assert (overridden.xla, overridden.xla_elementwise) == (as_written.xla,
                                                                as_written.xla_elementwise), path


def test_a_run_from_before_the_encoders_own_attention_dropout_keeps_its_rate(
        tmp_path, multi30k_sample, capsys):
    """Runs written before 2026-12-03 (no model.encoder_attention_dropout) trained the encoder's
    attention with --dropout; loading and resuming them keeps that. New runs take
    --attention_dropout, as the decoders do."""
    import json

    from tfnmt import runs

    path = os.path.join(REPO, "configs", "multi30k_small.flags")
    _, (model, data, train_config) = parse(path, vocab=multi30k_sample["vocab"],
                                           run_dir=tmp_path / "old")
    assert (model.dropout, model.attention_dropout, model.encoder_attention_dropout) == (
        0.2, 0.0, 0.0)
    run = runs.create_or_check(str(tmp_path / "old"), model, data, train_config)
    config_path = os.path.join(run.run_dir, runs.CONFIG)
    with open(config_path, encoding="utf-8") as f:
        values = json.load(f)
    del values["model"]["encoder_attention_dropout"]
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(values, f)
    capsys.readouterr()
    assert runs.load(run.run_dir).model.encoder_attention_dropout == 0.2
    assert capsys.readouterr().err == ""  # a migration, not a missing setting
    _, (resumed, _, _) = parse(path, vocab=multi30k_sample["vocab"], run_dir=run.run_dir)
    assert resumed.encoder_attention_dropout == 0.2
