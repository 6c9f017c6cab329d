"""Sampling a running process tree with py-spy, and reading where its time went."""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.context import Bench

# Frames from these folders are the product's own code.
OWN_CODE = ("(core/", "(worker/", "(outbox/", "(reconcile/", "(web/")


def py_spy() -> str | None:
    """Path of the py-spy binary beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def sampled(pid: int, out: Path, rate: int = 97) -> Iterator[Path | None]:
    """Sample `pid` and its children while the block runs; write collapsed stacks to `out`."""
    binary = py_spy()
    if binary is None:
        yield None
        return
    argv = [binary, "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
    argv += ["--rate", str(rate), "--function", "--format", "raw", "--output", str(out)]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield out
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


def _frames(stack: str) -> list[str]:
    return [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]


def _idle(frame: str) -> bool:
    return frame.startswith(("wait (threading", "select (selectors", "sleep ("))


def summarize(raw: Path, top: int = 15) -> str:
    """Busy samples by function: self time of any frame, inclusive time of our own code."""
    own: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = _frames(stack)
        if not frames or not count.isdigit() or _idle(frames[-1]):
            continue
        samples = int(count)
        busy += samples
        leaves[frames[-1]] += samples
        for frame in {f for f in frames if any(part in f for part in OWN_CODE)}:
            own[frame] += samples
    if busy == 0:
        return "no busy samples"
    lines = [f"{busy} busy samples", "inclusive, our code:"]
    lines += [f"  {n / busy:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines.append("self (leaf frames):")
    lines += [f"  {n / busy:6.1%}  {frame}" for frame, n in leaves.most_common(top)]
    return "\n".join(lines)


@contextlib.contextmanager
def profiled(bench: Bench, pid: int, name: str) -> Iterator[None]:
    """With --profile, sample a service's process tree while the block runs and summarize."""
    if not bench.profile:
        yield
        return
    out = bench.run_dir / f"{name}-profile.txt"
    with sampled(pid, out) as written:
        yield
    if written is not None and written.exists():
        summary = summarize(written)
        (bench.run_dir / f"{name}-profile-summary.txt").write_text(summary + "\n")
        print(summary)
