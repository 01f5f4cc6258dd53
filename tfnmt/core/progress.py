"""Progress with an estimated time left, on stderr (a terminal line rewritten in place, else a
line every 30 seconds)."""

import sys
import time


def duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """progress(done) after each unit of work; done() at the end. The rate is measured from the
    first update on, so start-up (XLA compilation) does not inflate the estimate."""

    def __init__(self, total: int, what: str = "sentences", stream=None, every: float = 30.0):
        self.total, self.what, self.stream = total, what, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.5 if self.tty else every
        self.first = self.last = None

    def __call__(self, done: int):
        now = time.time()
        if self.first is None:
            self.first = (now, done)
        if self.last is not None and now - self.last < self.every and done < self.total:
            return
        self.last = now
        start, start_done = self.first
        rate = (done - start_done) / (now - start) if now > start and done > start_done else 0.0
        left = f", {duration((self.total - done) / rate)} left" if rate > 0 else ""
        line = f"{done}/{self.total} {self.what}{f', {rate:.1f}/s' if rate else ''}{left}"
        if self.tty:
            self.stream.write(f"\r{line}\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self):
        if self.tty and self.last is not None:
            self.stream.write("\n")
            self.stream.flush()
