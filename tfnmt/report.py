"""Regenerates the README's results section from the JSON files under results/:
python -m tfnmt.report [--readme=README.md --results=results]."""

import glob
import json
import os

from absl import flags

from tfnmt.errors import UserError, run_main
from tfnmt.data.corpus import write_atomic

FLAGS = flags.FLAGS
flags.DEFINE_string("readme", "README.md", "README to update.")
flags.DEFINE_string("results", "results", "Folder of result JSON files.")

START, END = "<!-- results:start -->", "<!-- results:end -->"


def describe(record):
    p = record["provenance"]
    return (f"`{p['command']}` — commit `{p['git_commit'][:12]}`, {p['date']}, "
            f"{p['cpu']} ({p['cpu_threads']} threads), TensorFlow {p['tensorflow']}")


TABLE_TITLES = {"benchmark": "Decoding speed", "serving_benchmark": "Exported SavedModel",
                "breakdown": "Decoding time breakdown (seconds)",
                "ctranslate2_side_by_side": "tfnmt beside CTranslate2 (random weights)"}


def table_intro(kind, v):
    if kind == "ctranslate2_side_by_side":
        return (f"Target tokens/s with outputs forced to {v['steps']} decoder steps from "
                f"{v['source_tokens']}-token random sources (vocabulary {v['vocab_size']}), the "
                f"same random weights in both; tfnmt decodes with XLA, float32; the fastest of "
                f"{v['repeats']} calls after a warm-up; each configuration in a process of its "
                "own, whose peak RSS (VmHWM) is given.")
    if kind == "breakdown":
        return (f"{v['sentences']} pseudo sentences of {v['length']} tokens decoded to "
                f"{v['length']} tokens, beam {v['beam']}, batch {v['batch']}, XLA "
                f"{'on' if v['xla'] else 'off'}; each component timed alone over the same steps, "
                "'others' is the rest of the total.")
    source = f"{v['sentences']} sentences of `{os.path.basename(v['source'])}`"
    if kind == "benchmark":
        return (f"{source}; alpha = time of {v['reference_run']} with beam {v['reference_beam']} "
                "at the same batch size and XLA setting / time of the row, measured in the same "
                "invocation; every batch shape decoded once before timing.")
    return (f"{source} through `{v['model']}` in a process that imports only TensorFlow and "
            "tensorflow_text; one untimed pass before each timed one.")


def model_summary(values):
    config = values.get("run_config", {}).get("model")
    if not config:
        return "-"
    return (f"{config['architecture']} {config['encoder_layers']}-{config['decoder_layers']}, "
            f"d {config['d_model']}")


def training_summary(values):
    training = values.get("training")
    if not training:
        return "-"
    steps = training["segments"][-1]["to_step"]
    return f"{steps} steps, {training['wall_seconds'] / 60:.0f} min"


def table_section(records, kind, title, columns, row, footnote):
    """One markdown table with a row per record of `kind`, then a footnote line per record."""
    chosen = [(path, r) for path, r in records if r["kind"] == kind]
    if not chosen:
        return []
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row(path, r["values"])) + " |"
              for path, r in chosen]
    return lines + [""] + [f"- {footnote(path, r)}" for path, r in chosen] + [""]


def render(records):
    lines = table_section(
        records, "evaluation", "Translation quality",
        ["result", "model", "data", "beam", "BLEU", "chrF2", "decode time (s)", "training"],
        lambda path, v: [f"[{v['name']}]({path})", model_summary(v),
                         os.path.basename(v.get("source", "-")),
                         v.get("decode", {}).get("beam_size", "-"), f"{v['bleu']:.2f}",
                         f"{v['chrf']:.2f}", v.get("decode_seconds", "-"), training_summary(v)],
        lambda path, r: f"`{path}`: {describe(r)}; BLEU signature "
                        f"`{r['values']['bleu_signature']}`")
    for kind in ("benchmark", "breakdown", "serving_benchmark", "ctranslate2_side_by_side"):
        for path, r in records:
            if r["kind"] == kind:
                lines += [f"### {TABLE_TITLES[kind]}: [{os.path.basename(path)}]({path})", "",
                          table_intro(kind, r["values"]), "", r["values"]["markdown"].rstrip(),
                          "", f"- {describe(r)}", ""]
    lines += render_analyses(records)
    return "\n".join(lines).rstrip() + "\n"


def render_analyses(records):
    """Figures (heatmaps, action histograms) as images; hint-loss scales as one table."""
    lines = table_section(
        records, "analysis_hint_scales", "Hint-based NART: loss terms at initialisation",
        ["result", "student starts from", "L_nll", "L_hid", "L_align", "tokens"],
        lambda path, v: [f"[{os.path.basename(path)}]({path})",
                         v.get("init_from") or "random initialisation", v["nll"], v["hid"],
                         v["align"], v["tokens"]],
        lambda path, r: describe(r))
    for path, r in records:
        if r["kind"] in ("analysis_heatmaps", "analysis_actions"):
            v = r["values"]
            title = ("Decoder hidden-state similarity and encoder-decoder attention"
                     if r["kind"] == "analysis_heatmaps" else "Action categories used")
            lines += [f"### {title}: [{os.path.basename(path)}]({path})", "",
                      f"![{title}]({v['png']})", ""]
            for name, text in v.get("translations", {}).items():
                lines.append(f"- {name}: {text}")
            lines += [f"- {describe(r)}", ""]
    return lines


def main(argv):
    del argv
    paths = sorted(glob.glob(os.path.join(FLAGS.results, "*.json")))
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            records.append((path, json.load(f)))
    with open(FLAGS.readme, encoding="utf-8") as f:
        text = f.read()
    if START not in text or END not in text:
        raise UserError(f"{FLAGS.readme} has no {START} ... {END} section.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    body = render(records) if records else "No results recorded yet.\n"
    write_atomic(FLAGS.readme, f"{head}{START}\n{body}{END}{tail}")
    print(f"updated {FLAGS.readme} from {len(records)} result file(s)")


if __name__ == "__main__":
    run_main(main)
