from tfnmt.evaluation import frontier


def row(run, batch, speed, bleu, decoding="beam 4", xla=True):
    return {"run": run, "batch": batch, "sentences_per_second": speed, "bleu": bleu,
            "decoding": decoding, "xla": xla}


ROWS = [
    row("teacher", 1, 10.0, 40.0), row("teacher", 1, 12.0, 40.0, xla=False),  # faster plain
    row("at_6-1", 1, 20.0, 39.5),
    row("hrt", 1, 15.0, 39.0),          # slower and worse than at_6-1: dominated
    row("hybrid", 1, 30.0, 39.0),       # fastest: on the front
    row("hint_nart", 1, 20.0, 39.5, "nat 9 lengths"),  # ties at_6-1: neither beats the other
    row("teacher", 32, 100.0, 40.0), row("hrt", 32, 150.0, 39.0), row("at_6-1", 32, 120.0, 39.5),
]


def test_points_take_the_faster_xla_setting_of_each_run_and_decoding():
    by_batch = frontier.points(ROWS)
    assert sorted(by_batch) == [1, 32]
    assert ("teacher", "beam 4", 12.0, 40.0) in by_batch[1]
    assert len(by_batch[1]) == 5


def test_pareto_front_and_dominated_points_by_hand():
    one = frontier.points(ROWS)[1]
    assert [p[0] for p in frontier.pareto_front(one)] == ["hybrid", "at_6-1", "hint_nart",
                                                          "teacher"]
    assert [(p[0], q[0]) for p, q in frontier.dominated(one)] == [("hrt", "at_6-1")]
    # At batch 32 the HRT is the fastest: on the front, dominated by nobody.
    wide = frontier.points(ROWS)[32]
    assert frontier.dominated(wide) == []
    assert [p[0] for p in frontier.pareto_front(wide)] == ["hrt", "at_6-1", "teacher"]


def test_summary_names_missing_runs_and_dominated_points():
    lines = frontier.summary_lines(ROWS)
    assert lines[0] == "- not measured: at_12-1, cmlm, dat, imitate_nat"
    assert ("  - hrt (beam 4, 15 sent/s, BLEU 39) is dominated by at_6-1 (20 sent/s, BLEU 39.5)"
            in lines)


def test_report_draws_the_frontier_beside_its_json(tmp_path):
    from tfnmt.report import render

    provenance = {"command": "python -m tfnmt.benchmark", "git_commit": "0" * 40, "date": "d",
                  "cpu": "c", "cpu_threads": 2, "tensorflow": "t"}
    values = {"rows": ROWS, "markdown": "| run |\n|---|\n", "sentences": 3, "source": "s.en",
              "reference_run": "teacher", "reference_beam": 4}
    json_path = str(tmp_path / "frontier_x.json")
    text = render([(json_path, {"kind": "benchmark", "provenance": provenance,
                                "values": values})])
    png = tmp_path / "frontier_x.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"![Speed-quality frontier]({png})" in text
    assert "- batch 32: Pareto front hrt (beam 4), at_6-1 (beam 4), teacher (beam 4)" in text


def test_the_frontier_script_times_exactly_the_frontier_runs_with_the_rows_picks(tmp_path):
    """configs/multi30k_frontier_benchmark.sh (PYTHON a stand-in that records its commands):
    every frontier run once, each with the checkpoint and candidate rule the chain picked on
    val for its row; the report after it unless NO_REPORT."""
    import os
    import subprocess

    from tests.conftest import REPO

    picks = tmp_path / "results" / "frontier_rows"
    for folder, row, pick in [("checkpoint", "hrt", "best"), ("checkpoint", "hybrid", "averaged"),
                              ("nat_selection", "hint_nart", "normalized")]:
        (picks / folder).mkdir(parents=True, exist_ok=True)
        (picks / folder / f"{row}.txt").write_text(f"{pick}\n")
    log = tmp_path / "commands.txt"
    (tmp_path / "python").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (tmp_path / "python").chmod(0o755)
    script = os.path.join(REPO, "configs", "multi30k_frontier_benchmark.sh")
    for no_report in ("", "1"):
        subprocess.run(["bash", script], cwd=tmp_path, check=True, env={
            **os.environ, "PYTHON": str(tmp_path / "python"), "NO_REPORT": no_report})
    first, report, again = log.read_text().splitlines()
    assert report == "-m tfnmt.report" and first == again
    runs = first.split("--runs=")[1].split()[0].split(",")
    assert sorted(r.split("=")[0] for r in runs) == sorted(frontier.BASELINES + frontier.METHODS)
    assert "hrt=runs/multi30k_hrt_k2@best" in runs
    assert "hybrid=runs/multi30k_hybrid_multihead_h256_kd" in runs
    assert "--nat_selection=hint_nart=normalized " in first
    assert first.endswith(" --output=results/frontier_multi30k")


def test_targets_by_hand():
    rows = [row("teacher", 1, 10.0, 40.0), row("teacher", 1, 9.0, 40.2, "beam 5"),
            row("hybrid", 1, 25.0, 39.6),                                        # -0.4: met
            row("hrt", 1, 14.0, 39.6, "hrt k=2 b_at=4 b_nat=1"),                 # -0.4, 1.4x
            row("hint_nart", 1, 16.0, 36.5, "nat 9 lengths AT-rescored"),        # -3.5, 1.6x
            row("cmlm", 1, 9.0, 39.8, "mask-predict I=4 l=5"),                   # 1.0x beam 5
            row("at_6-1", 1, 15.0, 39.7),                                        # beats hrt only
            row("teacher", 32, 100.0, 40.0), row("hint_nart", 32, 90.0, 36.5, "nat 9 lengths "
                                                                              "AT-rescored")]
    got = {(r[0], r[1], r[2]): r[3:] for r in frontier.target_rows(rows)}
    assert got[("#15", "hybrid (beam 4) BLEU − teacher (beam 4) ≥ -0.5", 1)] == ("-0.40", "met")
    assert got[("#15", "hrt (hrt k=* b_at=4 *) BLEU − teacher (beam 4) ≥ -0.3", 1)] == (
        "-0.40", "missed by 0.10")
    assert got[("#16", "hrt (hrt k=* b_at=4 *) speed / teacher (beam 4) ≥ 1.5", 1)] == (
        "1.40×", "missed by 0.10")
    assert got[("#16", "hrt (hrt k=* b_at=4 *) speed / teacher (beam 4) ≥ 1.5", 8)] == (
        "-", "not measured")
    assert got[("#16", "hint_nart (nat 9 lengths AT-rescored) speed / teacher (beam 4) ≥ 1.5",
                 1)] == ("1.60×", "met")
    assert got[("#16", "hint_nart (nat 9 lengths AT-rescored) speed / teacher (beam 4) ≥ 1",
                 32)] == ("0.90×", "missed by 0.10")
    assert got[("#15", "hint_nart (nat 9 lengths AT-rescored) BLEU − teacher (beam 4) ≥ -3",
                 1)] == ("-3.50", "missed by 0.50")
    assert got[("#16", "cmlm (mask-predict I=4 *) speed / teacher (beam 5) ≥ 1", 1)] == (
        "1.00×", "met")
    assert got[("#15", "imitate_nat (nat 7 lengths AT-rescored) BLEU − dat (beam 4) ≥ -2.5",
                 1)] == ("-", "not measured")
    assert got[("#15", "no method dominated by at_6-1 or at_12-1", 1)] == (
        "hrt (hrt k=2 b_at=4 b_nat=1) by at_6-1", "missed")
    assert got[("#15", "no method dominated by at_6-1 or at_12-1", 32)] == ("none", "met")
    assert frontier.target_lines(rows)[0] == "| issue | target | batch | measured | verdict |"


def test_a_speed_target_shows_the_range_of_its_pass_by_pass_ratios():
    """Hand-worked: the teacher's passes 3.0 and 2.0 s, HRT's 2.0 and 1.25 s (two rounds):
    the ratio of the fastest passes 1.60 (the verdict's), pass by pass 1.50 and 1.60. Rows with
    one pass each, or another count, or from different files show the ratio alone."""
    def timed(run, decoding, passes, **extra):
        return {**row(run, 1, 100 / min(passes), 40.0, decoding), "pass_seconds": passes,
                **extra}

    rows = [timed("teacher", "beam 4", [3.0, 2.0]),
            timed("hrt", "hrt k=2 b_at=4 b_nat=1", [2.0, 1.25])]
    got = {(r[1], r[2]): r[3:] for r in frontier.target_rows(rows, domination=False)}
    name = "hrt (hrt k=* b_at=4 *) speed / teacher (beam 4) ≥ 1.5"
    assert got[(name, 1)] == ("1.60× (passes 1.50–1.60)", "met")
    for other in ([1.25], [2.0, 1.25, 1.3]):
        rows[1] = timed("hrt", "hrt k=2 b_at=4 b_nat=1", other)
        got = {(r[1], r[2]): r[3:] for r in frontier.target_rows(rows, domination=False)}
        assert got[(name, 1)][0] == "1.60×"
    rows = [timed("teacher", "beam 4", [3.0, 2.0], file="teacher.json"),
            timed("hrt", "hrt k=2 b_at=4 b_nat=1", [2.0, 1.25], file="hrt.json")]
    got = {(r[1], r[2]): r[3:] for r in frontier.target_rows(rows, domination=False)}
    assert got[(name, 1)][0] == "1.60×"


def test_imitation_target_of_the_ablations_by_hand():
    rows = [row("imitate_nat", 32, 50.0, 31.2, "nat 1 length"),
            row("imitate_nat_soft", 32, 50.0, 30.0, "nat 1 length"),
            row("imitate_nat", 32, 30.0, 33.0, "nat 7 lengths AT-rescored"),
            row("imitate_nat_soft", 32, 30.0, 32.5, "nat 7 lengths AT-rescored"),
            row("imitate_nat_plain", 32, 55.0, 29.7, "nat 1 length"),
            row("imitate_nat_plain", 32, 33.0, 31.9, "nat 7 lengths AT-rescored")]
    got = frontier.target_rows(rows, frontier.ABLATION_TARGETS, domination=False)
    # first against the paper's competitor (no imitation module), then without L_IL alone
    assert [r[1].split(" − ")[1] for r in got] == [
        f"{run} ({decoding}) ≥ 1" for run in ("imitate_nat_plain", "imitate_nat_soft")
        for decoding in ("nat 1 length", "nat 7 lengths AT-rescored")]
    assert [r[3:] for r in got] == [("+1.50", "met"), ("+1.10", "met"), ("+1.20", "met"),
                                    ("+0.50", "missed by 0.50")]
    from tfnmt.report import render

    provenance = {"command": "c", "git_commit": "0" * 40, "date": "d", "cpu": "c",
                  "cpu_threads": 2, "tensorflow": "t"}
    values = {"rows": rows, "markdown": "| run |\n|---|\n", "sentences": 3, "source": "s.en",
              "reference_run": "imitate_nat", "reference_beam": 4}
    text = render([("results/ablations_imitate_nat_x.json",
                    {"kind": "benchmark", "provenance": provenance, "values": values})])
    assert ("| #15 | imitate_nat (nat 1 length) BLEU − imitate_nat_soft (nat 1 length) ≥ 1 "
            "| 32 | +1.20 | met |") in text


def test_shortlist_target_by_hand_in_every_file_that_timed_both():
    """#17: each decoding over the shortlist against the same decoding without it, batch by
    batch; files without shortlist rows, or rows from before decodings were named, add
    nothing."""
    rows = [row("hrt", 1, 9.0, 38.0, "hrt k=2"), row("hrt", 1, 9.0, 37.7, "hrt k=2 shortlist"),
            row("hrt", 32, 9.0, 38.0, "hrt k=2"), row("hrt", 32, 9.0, 37.9, "hrt k=2 shortlist"),
            row("hrt", 1, 9.0, 30.0, "hrt k=2 int8"), row("teacher", 1, 9.0, 39.0)]
    got = frontier.target_rows(rows, frontier.shortlist_targets(rows), domination=False)
    assert [r[2:] for r in got] == [(1, "-0.30", "missed by 0.10"), (32, "-0.10", "met")]
    from tfnmt.report import render

    provenance = {"command": "c", "git_commit": "0" * 40, "date": "d", "cpu": "c",
                  "cpu_threads": 2, "tensorflow": "t"}

    def record(rows):
        return {"kind": "benchmark", "provenance": provenance,
                "values": {"rows": rows, "markdown": "| run |\n|---|\n", "sentences": 3,
                           "source": "s.en", "reference_run": "teacher", "reference_beam": 4}}

    text = render([("results/shortlist_hrt_x.json", record(rows)),
                   ("results/frontier_y.json", record(ROWS)),
                   ("results/old.json", record([{"run": "teacher", "batch": 1, "bleu": 1.0}]))])
    section = text.split("### Shortlist target (#17)")[1].split("###")[0]
    assert ("| [shortlist_hrt_x.json](results/shortlist_hrt_x.json) | hrt (hrt k=2 shortlist) "
            "BLEU − hrt (hrt k=2) ≥ -0.2 | 1 | -0.30 | missed by 0.10 |") in section
    assert section.count("| [") == 2  # the two batches of the one file that timed both


def test_rows_timed_one_run_at_a_time_assemble_into_one_frontier_by_alpha(tmp_path):
    """configs/multi30k_frontier.sh's row files: speed is each row's alpha against its own
    file's teacher (files from machines of other speeds compare), the teacher's rows shown come
    from its own file, a target against the teacher is judged against the teacher of its run's
    file (here one trained again), and the report draws and judges them."""
    from tfnmt.report import render

    def timed(run, batch, seconds, bleu, decoding="beam 4", weights=None):
        return {**row(run, batch, 1000 / seconds, bleu, decoding), "seconds": seconds,
                "weights": weights or f"w-{run}"}

    def record(*rows):  # alpha as tfnmt.benchmark adds it: against the file's teacher beam 4
        reference = {r["batch"]: r["seconds"] for r in rows
                     if r["run"] == "teacher" and r["decoding"] == "beam 4"}
        rows = [{**r, "alpha": round(reference[r["batch"]] / r["seconds"], 2)} for r in rows]
        provenance = {"command": "c", "git_commit": "0" * 40, "date": "d", "cpu": "c",
                      "cpu_threads": 2, "tensorflow": "t"}
        return {"kind": "benchmark", "provenance": provenance, "values": {
            "rows": rows, "reference_run": "teacher", "complete": True}}

    folder = tmp_path / "frontier_rows"
    files = [  # a slow machine timed the 6-1 and the HRT, a fast one the teacher alone
        (str(folder / "at_6-1.json"), record(timed("teacher", 1, 100.0, 40.0),
                                             timed("at_6-1", 1, 50.0, 39.9))),
        (str(folder / "hrt.json"), record(  # beside a teacher trained again: 40.3
            timed("teacher", 1, 90.0, 40.3, weights="w-again"),
            timed("hrt", 1, 60.0, 39.8, "hrt k=2 b_at=4 b_nat=1"))),
        (str(folder / "cmlm.json"), record(
            timed("teacher", 1, 80.0, 40.0), timed("teacher", 1, 100.0, 40.1, "beam 5"),
            timed("cmlm", 1, 90.0, 39.0, "mask-predict I=4 l=5"))),
        (str(folder / "teacher.json"), record(timed("teacher", 1, 20.0, 40.0)))]
    rows = frontier.assemble([(path, r["values"]) for path, r in files])
    assert [(r["run"], r["decoding"], r["sentences_per_second"], r["file"]) for r in rows] == [
        ("teacher", "beam 4", 1.0, files[3][0]), ("at_6-1", "beam 4", 2.0, files[0][0]),
        ("hrt", "hrt k=2 b_at=4 b_nat=1", 1.5, files[1][0]),
        ("cmlm", "mask-predict I=4 l=5", 0.89, files[2][0])]
    text = render([], row_files=files)
    assert (folder / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ("| #16 | hrt (hrt k=* b_at=4 *) speed / teacher (beam 4) ≥ 1.5 | 1 | 1.50× | met |"
            in text)
    assert ("| #15 | hrt (hrt k=* b_at=4 *) BLEU − teacher (beam 4) ≥ -0.3 | 1 | -0.50 "
            "| missed by 0.20 |") in text  # its own file's teacher, not teacher.json's 40.0
    assert ("| #16 | cmlm (mask-predict I=4 *) speed / teacher (beam 5) ≥ 1 | 1 | 1.11× | met |"
            in text)  # 0.89 / 0.8: the beam-5 row of its own file
    assert ("| #15 | hint_nart (nat 9 lengths AT-rescored) BLEU − teacher (beam 4) ≥ -3 | 1 | - "
            "| not measured |") in text
    assert ("  - hrt (hrt k=2 b_at=4 b_nat=1, 1.5 alpha, BLEU 39.8) is dominated by at_6-1 "
            "(2 alpha, BLEU 39.9)") in text
    domination = next(line for line in text.splitlines()
                      if line.startswith("| #15 | no method dominated by at_6-1 or at_12-1 | 1 |"))
    assert "hrt (hrt k=2 b_at=4 b_nat=1) by at_6-1" in domination and "missed" in domination
    assert "| hrt.json | teacher, hrt | w-again | yes |" in text
    # A run's file stopped before its first row of the run holds the teacher alone too
    # (alphabetically before teacher.json): the teacher's rows still come from teacher.json.
    partial = (str(folder / "at_12-1.json"), record(timed("teacher", 1, 30.0, 39.0)))
    again = frontier.assemble([(path, r["values"]) for path, r in [partial] + files])
    assert [(r["run"], r["file"]) for r in again] == [(r["run"], r["file"]) for r in rows]
    figure = frontier.plot(rows, str(tmp_path / "again.png"), xlabel="alpha")
    assert [ax.get_xlabel() for ax in figure.axes] == ["alpha"]  # one panel: batch 1


def test_a_reference_timed_beside_a_run_sets_its_targets_and_keeps_its_own_frontier_point():
    """configs/multi30k_frontier.sh times imitate-NAT beside the DAT it learned from (a DAT
    trained again on a new machine is another model than the one of dat.json): its targets take
    that file's DAT, the frontier shows the DAT once, from dat.json. Inside one file the
    speed target divides the measured speeds, not the rounded alphas (1.64, not 1.30 / 0.80)."""
    def timed(run, batch, alpha, bleu, decoding="beam 4", speed=None):
        return {**row(run, batch, 10.0 * alpha if speed is None else speed, bleu, decoding),
                "alpha": alpha}

    def values(*rows):
        return {"rows": list(rows), "reference_run": "teacher", "complete": True}

    lpd = "nat 7 lengths AT-rescored"
    files = [
        ("rows/imitate_nat.json", values(timed("teacher", 1, 1.0, 38.0),
                                         timed("dat", 1, 0.8, 37.0, speed=7.96),
                                         timed("imitate_nat", 1, 1.3, 35.0, lpd, 13.04))),
        ("rows/dat.json", values(timed("teacher", 1, 1.0, 38.5), timed("dat", 1, 0.5, 39.0)))]
    rows = frontier.assemble(files)
    assert [(r["run"], r["bleu"], r["file"]) for r in rows] == [
        ("teacher", 38.0, "rows/imitate_nat.json"), ("imitate_nat", 35.0, "rows/imitate_nat.json"),
        ("dat", 39.0, "rows/dat.json")]
    got = {(t[1], t[2]): t[3:] for t in frontier.file_target_rows(files)}
    assert got[(f"imitate_nat ({lpd}) BLEU − dat (beam 4) ≥ -2.5", 1)] == ("-2.00", "met")
    assert got[(f"imitate_nat ({lpd}) speed / dat (beam 4) ≥ 1.5", 1)] == ("1.64×", "met")
    without = frontier.file_target_rows(  # not timed beside it: dat.json's DAT
        [("rows/imitate_nat.json", values(*files[0][1]["rows"][::2])), files[1]])
    got = {(t[1], t[2]): t[3:] for t in without}
    assert got[(f"imitate_nat ({lpd}) BLEU − dat (beam 4) ≥ -2.5", 1)] == (
        "-4.00", "missed by 1.50")
    assert got[(f"imitate_nat ({lpd}) speed / dat (beam 4) ≥ 1.5", 1)] == ("2.60×", "met")


def test_the_plot_numbers_each_run_and_decoding_once_for_every_panel(tmp_path):
    """Two panels a line (a spare one removed); one legend keys every (run, decoding) by the
    number written beside its point in every panel, baselines first, and the Pareto front."""
    rows = ROWS + [row("hint_nart", 16, 200.0, 39.5, "nat 9 lengths"),
                   row("teacher", 16, 50.0, 40.0)]
    figure = frontier.plot(rows, str(tmp_path / "f.png"))
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_title() for ax in figure.axes] == ["batch 1", "batch 16", "batch 32"]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [
        "1  teacher: beam 4", "2  at_6-1: beam 4", "3  hybrid: beam 4", "4  hrt: beam 4",
        "5  hint_nart: nat 9 lengths", "Pareto front"]
    beside = {ax.get_title(): sorted(t.get_text() for t in ax.texts) for ax in figure.axes}
    assert beside == {"batch 1": ["1", "2", "3", "4", "5"], "batch 16": ["1", "5"],
                      "batch 32": ["1", "2", "4"]}
