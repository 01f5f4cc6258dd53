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


def test_the_frontier_script_times_exactly_the_frontier_runs():
    import os
    import re

    from tests.conftest import REPO

    script = open(os.path.join(REPO, "configs", "multi30k_frontier_benchmark.sh")).read()
    names = re.findall(r"[,\"]([\w.-]+)=runs/", script)
    assert sorted(names) == sorted(frontier.BASELINES + frontier.METHODS)
    assert "--output=results/frontier_multi30k " in script
