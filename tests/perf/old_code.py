"""An earlier commit's tfnmt/ importable beside the working tree's, for A/B timing scripts."""
import os
import re
import subprocess
import tempfile


def old_package(commit):
    """The commit's tfnmt/ as package tfnmt_old in a temporary directory (imports renamed);
    returns the directory to put on sys.path."""
    out = tempfile.mkdtemp(prefix="tfnmt-ab-")
    archive = subprocess.run(["git", "archive", commit, "tfnmt"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", out], input=archive.stdout, check=True)
    os.rename(os.path.join(out, "tfnmt"), os.path.join(out, "tfnmt_old"))
    for root, _, files in os.walk(os.path.join(out, "tfnmt_old")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                text = re.sub(r"\btfnmt\.", "tfnmt_old.", text)
                text = text.replace("from tfnmt import", "from tfnmt_old import")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    return out
