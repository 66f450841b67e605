"""Start and stop a private JACK server (dummy backend) for tests and benchmarks of the live audio path.

The dummy backend needs no sound card but runs in real time, so xruns and deadlines are real.  Each
server gets a unique name (``jackd -n``) so that parallel test runs and a user's own JACK server do not
meet; clients find it through the ``JACK_DEFAULT_SERVER`` environment variable, which libjack reads
whenever a client opens.  That covers PortAudio's JACK host API too, which has no server-name option.

Needs: ``apt-get install jackd2`` (server; pulls libjack-jackd2-0) and ``pip install JACK-Client``
(module ``jack``, a cffi binding that loads libjack at import).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "install with: apt-get install jackd2 libjack-jackd2-0 && pip install JACK-Client"


class JackUnavailable(RuntimeError):
    """jackd or the JACK-Client package is missing, or the server did not come up."""


@dataclass
class JackServer:
    """A running jackd process and what a client needs to reach it."""

    name: str
    sample_rate: int
    period: int
    realtime: bool
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 2000) -> str:
        """End of jackd's combined stdout/stderr, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @contextlib.contextmanager
    def as_default(self) -> Iterator[JackServer]:
        """``JACK_DEFAULT_SERVER`` names this server while inside, so that every JACK client of this process
        (PortAudio's included) reaches it; on the way out the server stops and the variable is put back."""
        previous = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        try:
            yield self
        finally:
            self.stop()
            if previous is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = previous

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (jackd shuts down cleanly on it), then SIGKILL if it hangs; idempotent.

        A server that did not shut down cleanly (killed, as the device-lost test does, or hung) leaves
        its slot in JACK's shared server registry, which holds 8; libjack frees a dead server's slot only
        when a server of the same name registers again.  So a briefly restarted namesake frees it, or
        later servers fail with "Too many servers already active".
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        self.log_path.unlink(missing_ok=True)
        if self.process.returncode == -signal.SIGKILL:
            # JackUnavailable: nothing more to free, the registry is then already full of live servers
            with contextlib.suppress(JackUnavailable):
                start_jack_server(self.sample_rate, self.period, self.realtime, name=self.name).stop()


def _wait_until_accepting(server: JackServer, timeout_s: float) -> None:
    """Poll with ``jack_lsp`` (jackd2's own client) until the server lists its ports.

    The probe runs in a child process on purpose: a JACK client opened in this process leaves libjack
    state behind for that server, and when the server is later killed (the device-lost test does
    exactly that) libjack's threads in this process crashed it (measured: a segfault in pytest).
    """
    lsp = shutil.which("jack_lsp")
    if lsp is None:
        raise JackUnavailable("jack_lsp not found on PATH (it comes with jackd2)")
    deadline = time.monotonic() + timeout_s
    environment = {**os.environ, "JACK_NO_START_SERVER": "1"}
    while True:
        if server.process.poll() is not None:
            raise JackUnavailable(f"jackd exited with {server.process.returncode}: {server.log_tail()}")
        probe = subprocess.run([lsp, "-s", server.name], env=environment, capture_output=True, check=False)
        if probe.returncode == 0 and b"system:" in probe.stdout:
            return
        if time.monotonic() > deadline:
            raise JackUnavailable(f"jackd not accepting clients after {timeout_s} s: {server.log_tail()}")
        time.sleep(0.05)


def realtime_permitted(priority: int = 1) -> bool:
    """Whether this user may use SCHED_FIFO at ``priority`` (root with CAP_SYS_NICE, or an rtprio limit),
    tried in a child process so that this process's own scheduling is untouched."""
    probe = f"import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param({priority}))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False).returncode == 0


def start_jack_server(sample_rate: int = 48000, period: int = 256, realtime: bool | None = None,
                      timeout_s: float = 10.0, name: str | None = None) -> JackServer:
    """Start ``jackd [--no-realtime] -n <name> -d dummy -r <rate> -p <period>`` and wait until it
    accepts clients.  Raises JackUnavailable (with the reason) if it cannot start.  ``name`` defaults to
    a unique one.

    ``realtime=None`` means: real-time scheduling where permitted, else ``--no-realtime``.  With RT,
    jackd also runs every client's process callback (PortAudio's, the tests' own) at SCHED_FIFO; without
    it, a chain of clients in one Python process xruns as soon as other work loads the machine
    (measured: ~10 xruns within a second on a busy 2-core box, none with RT).
    """
    if realtime is None:
        realtime = realtime_permitted()
    jackd = shutil.which("jackd")
    if jackd is None:
        raise JackUnavailable("jackd not found on PATH")
    name = name or f"pp-{uuid.uuid4().hex[:8]}"  # short: jack_lsp -s corrupts its heap on 24-character names
    fd, log = tempfile.mkstemp(prefix="jackd-", suffix=".log")
    scheduling = [] if realtime else ["--no-realtime"]
    cmd = [jackd, *scheduling, "-n", name, "-d", "dummy", "-r", str(sample_rate), "-p", str(period)]
    with os.fdopen(fd, "wb") as log_file:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    server = JackServer(name, sample_rate, period, realtime, process, Path(log))
    try:
        _wait_until_accepting(server, timeout_s)
    except BaseException:
        server.stop()
        raise
    return server
