"""Runs `python -m <command>` for the tests without paying TensorFlow's import each time.

A test process starts one server (`python -m tests.command_server`). It imports TensorFlow and
the library, but starts no TensorFlow runtime (no op runs), then forks a child per request. The
child is a fresh `python -m` in every way a command can see: the request's argv, environment,
working directory and standard streams, its own flags and runtime. Commands whose start-up is
itself under test (the quiet TensorFlow import) run in a real process (conftest.run_module's
fresh=True).

Protocol, one JSON object a line: request {"id", "module", "args", "env", "cwd", "stdin",
"stdout", "stderr"} (paths of files) on the server's stdin; it answers {"id", "pid"} when the
child starts and {"id", "returncode"} when it ends. The server is single-threaded: a thread
holding a lock while another forks would leave the child that lock, held forever.
"""

import json
import os
import select
import sys


def preload():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            import keras  # noqa: F401
            import keras_hub  # noqa: F401
            import numpy  # noqa: F401
            import sacrebleu  # noqa: F401
            import tensorflow  # noqa: F401
            import tensorflow_text  # noqa: F401
            # Library packages only: the commands and tfnmt.cli define flags on import.
            import tfnmt.evaluation.benchmark  # noqa: F401
            import tfnmt.serving.saved_model  # noqa: F401
            import tfnmt.training.trainer  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def child(request):
    """In the forked child: become `python -m module args` and exit with its code."""
    import atexit
    import runpy
    import traceback

    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    for fd, path, mode in ((0, request["stdin"], os.O_RDONLY),
                           (1, request["stdout"], os.O_WRONLY),
                           (2, request["stderr"], os.O_WRONLY)):
        opened = os.open(path, mode)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    sys.argv = [request["module"], *request["args"]]
    sys.path[0] = request["cwd"]
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:  # as the interpreter would: the traceback, then exit 1
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def answer(message):
    os.write(1, (json.dumps(message) + "\n").encode())  # no Python-level lock to inherit


def serve():
    preload()
    answer({"ready": True})
    children = {}  # pid -> request id
    pending = b""
    while True:
        readable, _, _ = select.select([0], [], [], 0.02)
        if readable:
            data = os.read(0, 65536)
            if not data:
                break
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    child(request)
                children[pid] = request["id"]
                answer({"id": request["id"], "pid": pid})
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            answer({"id": children.pop(pid), "returncode": os.waitstatus_to_exitcode(status)})
    for pid in children:  # the test process went away: its commands go too
        os.kill(pid, 9)


if __name__ == "__main__":
    serve()
