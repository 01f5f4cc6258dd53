"""Result files under results/: metric values plus where they came from."""

import datetime
import json
import os
import platform
import subprocess
import sys
from tfnmt.core.files import write_atomic


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # bfloat16 matrix instructions (x86)


def cpu_flags(path="/proc/cpuinfo"):
    """The first processor's feature flags, or None where the system does not list them."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def git_commit():
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance():
    import tensorflow as tf

    return {"command": " ".join(["python -m " + sys.modules["__main__"].__spec__.name
                                 if getattr(sys.modules["__main__"], "__spec__", None)
                                 else sys.argv[0]] + sys.argv[1:]),
            "git_commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu_model(), "cpu_threads": os.cpu_count(),
            "tensorflow": tf.__version__}


def write_result(path, kind, values):
    """Writes {"kind", "values", "provenance"} as JSON, atomically."""

    record = {"kind": kind, "values": values, "provenance": provenance()}
    write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def peak_rss_mb():
    """This process's peak resident memory (VmHWM: getrusage's ru_maxrss would include the
    parent's memory at the fork that started this interpreter)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")
