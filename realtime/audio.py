"""Duplex audio I/O for the engine: device discovery, a measured real-time runner, PortAudio refresh.

The runner opens one sounddevice (PortAudio) duplex stream and drives a plugin-style processor
(``prepare(sample_rate, block_size)``, ``process(block) -> mono block``).  It measures what decides
whether the engine is usable live: xruns reported by the host (callback status flags), callbacks that
took longer than one block (deadline misses) and the distribution of per-callback processing time.

Two modes:

* ``"callback"`` (default): the processor runs inside the audio callback.  The runner adds no
  latency (PortAudio may: see ``unbuffered``); a block that is too slow becomes a deadline miss and,
  on a real device, an xrun.
* ``"worker"``: the callback only copies blocks into and out of lock-free SPSC rings
  (:class:`realtime.ringbuffer.BlockRing`); a worker thread runs the processor.  This adds
  ``worker_delay_blocks`` blocks of latency and gives the worker that much slack.  Overload policy:
  when the processed block for the current slot has not arrived in time, the callback outputs the
  dry input of that slot (delayed by the same amount, so the timing stays aligned) and counts a
  ``dry_block``; processed blocks that arrive after their slot are discarded and counted as
  ``late_blocks``; the worker skips (and counts as ``skipped_blocks``) input whose output slot has
  already been played, so that after a stall it catches up at once instead of producing a run of
  late blocks; input blocks that do not fit into a full input ring are counted as
  ``dropped_input_blocks``.  Skipped and dropped blocks never reach the processor.  The worker only
  helps when the processor releases the GIL for most of its work (NumPy, torch), because the
  callback needs the GIL to run at all; and the worker is an ordinary-priority thread, so unlike a
  JACK callback it is not protected from other load on the machine.

Nothing in the callback takes a lock, logs, does I/O or grows a container: timings go into a
preallocated NumPy array indexed by a counter, and counters are plain integer attributes.
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol, Self

import numpy as np
import sounddevice as sd

from realtime.ringbuffer import BlockRing

Mode = Literal["callback", "worker"]
DeviceSpec = int | str | None

_XRUN_FLAGS = ("input_underflow", "input_overflow", "output_underflow", "output_overflow")


class BlockProcessor(Protocol):
    """What the runner drives: the part of ``engine.processor.Processor`` it uses (or a test double)."""

    def prepare(self, sample_rate: int, block_size: int) -> None: ...

    def process(self, block: np.ndarray) -> np.ndarray: ...


class DeviceNotFoundError(ValueError):
    """A device name or index does not select exactly one device with the needed channels."""


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device, as PortAudio enumerated it at its last initialisation."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float

    def __str__(self) -> str:
        return (
            f"[{self.index}] {self.name!r} ({self.hostapi}, {self.max_input_channels} in/"
            f"{self.max_output_channels} out, {self.default_samplerate:g} Hz)"
        )


def refresh_portaudio() -> None:
    """Make PortAudio re-scan host APIs and devices (e.g. after a JACK server was started).

    PortAudio enumerates audio servers (JACK, ALSA, ...) only inside ``Pa_Initialize``, which
    sounddevice calls once at import, so a JACK server started later is invisible until PortAudio
    is terminated and initialised again.  No stream may be open while this runs: a late stop is waited for, up
    to ``LATE_STOP_GRACE_S``, and RuntimeError if it never ends (:func:`release_portaudio`).
    """
    release_portaudio()
    sd._initialize()


#: Longest JACK client name (``jack_client_name_size()`` is 64 with the terminating NUL).
MAX_CLIENT_NAME_BYTES = 63
#: The name PortAudio was last given (its own default until then): it keeps the pointer, so the bytes must
#: outlive its initialisation.
_client_name = [ctypes.create_string_buffer(b"PortAudio")]


def name_jack_client(name: str) -> None:
    """Give PortAudio's JACK client ``name`` (its ports become ``NAME:in_0``, ``NAME:out_0`` ...).

    PortAudio opens its JACK client when it initialises, under the name ``PaJack_SetClientName`` gave it,
    so a new name re-initialises PortAudio (no stream may be open; :func:`refresh_portaudio`).  A PortAudio built
    without JACK has
    no such client and ignores the name.
    """
    encoded = name.encode()
    if not name.strip() or ":" in name or len(encoded) > MAX_CLIENT_NAME_BYTES:
        raise ValueError(f"JACK client name {name!r}: give 1 to {MAX_CLIENT_NAME_BYTES} bytes without ':'")
    if encoded == _client_name[0].value:
        return
    set_name = getattr(ctypes.CDLL(sd._libname), "PaJack_SetClientName", None)  # the library sounddevice loaded
    if set_name is None:
        return
    buffer = ctypes.create_string_buffer(encoded)
    if set_name(buffer) != 0:
        raise ValueError(f"PortAudio refused the JACK client name {name!r}")
    _client_name[0] = buffer
    refresh_portaudio()


def release_portaudio() -> None:
    """Terminate PortAudio completely, closing the JACK client its JACK host API holds.

    Call this before stopping a JACK server that PortAudio has seen: terminating PortAudio after
    its server died aborts the whole process (``pa_jack.c: Terminate: Assertion `err == 0'``), and
    sounddevice terminates PortAudio at interpreter exit.  Until ``refresh_portaudio()`` is called
    again, sounddevice functions raise "PortAudio not initialized".  No stream may be open: a stream whose stop
    outlasted ``STOP_TIMEOUT_S`` is waited for up to ``LATE_STOP_GRACE_S`` more (terminating PortAudio while a
    stream closes aborts the process); if it never finishes, RuntimeError, and PortAudio stays as it is.
    """
    deadline = time.monotonic() + LATE_STOP_GRACE_S
    for stop in _late_stops:
        stop.join(max(0.0, deadline - time.monotonic()))
    _late_stops[:] = [stop for stop in _late_stops if stop.is_alive()]
    if _late_stops:
        raise RuntimeError(f"a stream did not stop within {STOP_TIMEOUT_S + LATE_STOP_GRACE_S:.0f} s (its device "
                           "or server died under it): PortAudio cannot be terminated; end the process with os._exit")
    while sd._initialized > 0:  # sounddevice's count of its Pa_Initialize calls; PortAudio ref-counts them
        sd._terminate()


#: How long stopping a stream may take before the device is taken for gone (PortAudio's JACK host API
#: waits for a process callback that a dead server never runs: measured, it hangs for minutes).
STOP_TIMEOUT_S = 5.0
#: How much longer :func:`release_portaudio` waits for a stop that outlasted ``STOP_TIMEOUT_S``: on a loaded
#: machine a live server's stop can take that long (seen: a JACK round trip with both cores of a 2-core machine
#: busy).
LATE_STOP_GRACE_S = 60.0
EVENT_HISTORY = 256  # times kept per kind of event (xrun, deadline miss); the counts are unbounded


class EventClock:
    """Counts an event and keeps when the last ``EVENT_HISTORY`` of them happened, without allocating.

    Times are ``time.monotonic()`` (the system-wide CLOCK_MONOTONIC), so that an event in the audio
    callback can be lined up with what another program saw at the same moment: the server's own
    xrun log, or a stall of the machine (see benchmarks/jackrig/stallwitness.py).
    """

    def __init__(self) -> None:
        self.count = 0
        self._times = np.zeros(EVENT_HISTORY, dtype=np.float64)

    def mark(self, at: float) -> None:
        """Count one event that happened at ``at`` (``time.monotonic()``)."""
        self._times[self.count % EVENT_HISTORY] = at
        self.count += 1

    def recent(self) -> tuple[float, ...]:
        """The kept times, oldest first."""
        kept = min(self.count, EVENT_HISTORY)
        return tuple(np.roll(self._times, -self.count)[EVENT_HISTORY - kept :].tolist())

# The helper threads of stops that outlasted STOP_TIMEOUT_S, each holding its stream (whose finaliser would
# hang too): PortAudio cannot be terminated while one runs (see :func:`portaudio_abandoned`).
_late_stops: list[threading.Thread] = []


def portaudio_abandoned() -> bool:
    """True while a stream's stop, given up on after ``STOP_TIMEOUT_S``, still runs (its device or server died
    under it, or the machine is starved).

    The process must then end with ``os._exit``: sounddevice's exit handler would terminate PortAudio,
    which hangs or aborts with such a stream open.
    """
    return any(stop.is_alive() for stop in _late_stops)


def _stop_and_close(stream: sd.Stream, timeout_s: float) -> None:
    """Stop and close ``stream`` on a helper thread; leave it running (a late stop) if that takes longer than
    ``timeout_s``."""
    failure: list[BaseException] = []

    def stop() -> None:
        try:
            try:
                stream.stop()
            finally:
                stream.close()
        except BaseException as error:  # noqa: BLE001 - re-raised on the caller's thread
            failure.append(error)

    helper = threading.Thread(target=stop, name="protophone-stream-stop", daemon=True)
    helper.start()
    helper.join(timeout_s)
    if helper.is_alive():
        _late_stops.append(helper)
    elif failure:
        raise failure[0]


def list_devices() -> list[DeviceInfo]:
    """All devices PortAudio currently knows, with host API, channel counts and default rate."""
    hostapis = sd.query_hostapis()
    return [
        DeviceInfo(
            index=i,
            name=d["name"],
            hostapi=hostapis[d["hostapi"]]["name"],
            max_input_channels=d["max_input_channels"],
            max_output_channels=d["max_output_channels"],
            default_samplerate=d["default_samplerate"],
        )
        for i, d in enumerate(sd.query_devices())
    ]


def default_device_indices() -> tuple[int | None, int | None]:
    """PortAudio's default input and output device indices (None where there is none)."""
    return tuple(None if index is None or index < 0 else int(index)  # type: ignore[return-value]
                 for index in sd.default.device)


def resolve_device(spec: DeviceSpec, kind: Literal["input", "output"]) -> DeviceInfo:
    """Turn a device index, a (case-insensitive, exact or unique partial) name or None (the default)
    into one device that has ``kind`` channels; otherwise raise a one-line DeviceNotFoundError that
    names the available devices, so a typo on the command line is fixed without reading docs."""
    channels = "max_input_channels" if kind == "input" else "max_output_channels"
    usable = [d for d in list_devices() if getattr(d, channels) > 0]
    available = "; ".join(str(d) for d in usable) or "none (is an audio server running?)"

    def fail(what: str) -> DeviceNotFoundError:
        return DeviceNotFoundError(f"{what}; available {kind} devices: {available}")

    if spec is None:
        default = sd.default.device[0 if kind == "input" else 1]
        if default is None or default < 0:
            raise fail(f"no default {kind} device")
        spec = int(default)
    if isinstance(spec, int):
        matches = [d for d in usable if d.index == spec]
        if not matches:
            raise fail(f"no {kind} device with index {spec}")
        return matches[0]
    wanted = spec.casefold()
    exact = [d for d in usable if d.name.casefold() == wanted]
    partial = [d for d in usable if wanted in d.name.casefold()]
    matches = exact or partial
    if len(matches) != 1:
        raise fail(f"{kind} device {spec!r} matches {len(matches)} devices")
    return matches[0]


@dataclass(frozen=True)
class TimingStats:
    """Distribution of per-block processing times in milliseconds."""

    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, seconds: np.ndarray) -> TimingStats:
        if seconds.size == 0:
            return cls(float("nan"), float("nan"), float("nan"))
        p50, p99 = np.percentile(seconds, [50, 99]) * 1e3
        return cls(float(p50), float(p99), float(seconds.max() * 1e3))

    def __str__(self) -> str:
        return f"p50 {self.p50_ms:.3f} ms, p99 {self.p99_ms:.3f} ms, max {self.max_ms:.3f} ms"


@dataclass(frozen=True)
class RunReport:
    """What a run measured.  ``xruns`` counts callbacks with any under/overflow flag set.

    ``xrun_clock_s`` and ``deadline_miss_clock_s`` say when those callbacks began, ``dry_block_clock_s``
    when the worker's result was missing and a block went out dry (see :class:`EventClock`).
    """

    mode: Mode
    sample_rate: int
    block_size: int
    blocks: int
    xruns: int
    xrun_flags: dict[str, int]
    deadline_misses: int
    callback_time: TimingStats
    worker_time: TimingStats | None
    worker_deadline_misses: int
    dry_blocks: int
    late_blocks: int
    skipped_blocks: int
    dropped_input_blocks: int
    wrong_size_blocks: int
    stream_latency_s: tuple[float, float]
    added_latency_samples: int
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    xrun_clock_s: tuple[float, ...] = ()
    deadline_miss_clock_s: tuple[float, ...] = ()
    dry_block_clock_s: tuple[float, ...] = ()

    @property
    def block_ms(self) -> float:
        return 1e3 * self.block_size / self.sample_rate

    @property
    def overloaded_blocks(self) -> int:
        """Blocks the listener got without the engine's output in time: callbacks over budget in callback
        mode, dry blocks (the overload policy) in worker mode."""
        return self.dry_blocks if self.mode == "worker" else self.deadline_misses

    def summary(self) -> str:
        """Multi-line human summary for logs and the terminal."""
        lines = [
            (f"{self.mode} mode, {self.sample_rate} Hz, block {self.block_size} "
             f"({self.block_ms:.2f} ms), {self.blocks} blocks ({self.blocks * self.block_ms / 1e3:.1f} s)"),
            f"xruns {self.xruns} {self.xrun_flags}, deadline misses {self.deadline_misses}"
            + (f", wrong-size blocks {self.wrong_size_blocks}" if self.wrong_size_blocks else ""),
            f"callback time: {self.callback_time}",
        ]
        if self.worker_time is not None:
            lines += [
                f"worker time: {self.worker_time}, worker deadline misses {self.worker_deadline_misses}",
                (f"dry blocks {self.dry_blocks}, late blocks {self.late_blocks}, "
                 f"skipped blocks {self.skipped_blocks}, dropped input blocks {self.dropped_input_blocks}, "
                 f"added latency {self.added_latency_samples} samples"),
            ]
        latency_in, latency_out = (1e3 * x for x in self.stream_latency_s)
        lines.append(f"stream latency in/out: {latency_in:.2f}/{latency_out:.2f} ms"
                     + (" (interrupted)" if self.interrupted else ""))
        return "\n".join(lines)


class DuplexRunner:
    """Runs a processor on a duplex stream and measures xruns, deadline misses and timing.

    Use ``run(duration_s)`` for a blocking, Ctrl-C-safe run, or ``start()``/``stop()`` (also as a
    context manager) when something else has to happen while audio runs.  The processor sees a
    float32 block of shape ``(n,)`` for one input channel or ``(n, ch)`` for more, and must return
    ``n`` mono samples, which go to every output channel.
    """

    def __init__(
        self,
        processor: BlockProcessor,
        *,
        sample_rate: int,
        block_size: int,
        input_device: DeviceSpec = None,
        output_device: DeviceSpec = None,
        input_channels: tuple[int, ...] = (1,),
        output_channels: int | None = None,
        mode: Mode = "callback",
        worker_delay_blocks: int = 1,
        ring_blocks: int = 8,
        timing_capacity: int = 1 << 16,
        unbuffered: bool = False,
    ) -> None:
        """``input_channels``: the device's input channels (from 1) the processor hears, in that order; the
        stream opens as many as the highest of them (PortAudio connects them to the device's first ones).
        ``output_channels`` defaults to min(2, device channels).  ``timing_capacity`` bounds the
        timing history: longer runs keep the most recent ``timing_capacity`` blocks for percentiles.

        ``unbuffered=True`` opens the stream with PortAudio's ``blocksize=0`` (the host's own
        period) instead of ``block_size``.  PortAudio's JACK host API otherwise inserts an adaptation
        buffer that costs exactly one block of extra latency even when ``block_size`` equals the JACK
        period (measured).  Use it when ``block_size`` is the host's period; a callback of any other
        size is answered with silence and counted in ``wrong_size_blocks``.
        """
        if mode not in ("callback", "worker"):
            raise ValueError(f"mode must be 'callback' or 'worker', got {mode!r}")
        if worker_delay_blocks < 1 or ring_blocks <= worker_delay_blocks:
            raise ValueError("need worker_delay_blocks >= 1 and ring_blocks > worker_delay_blocks")
        self.processor = processor
        self.sample_rate = int(sample_rate)
        self.block_size = int(block_size)
        self.mode: Mode = mode
        self.input_device = resolve_device(input_device, "input")
        self.output_device = resolve_device(output_device, "output")
        if not input_channels or min(input_channels) < 1:
            raise ValueError(f"input channels are numbered from 1, got {list(input_channels)}")
        if max(input_channels) > self.input_device.max_input_channels:
            raise ValueError(f"input channel {max(input_channels)} asked for, but {self.input_device.name!r} has "
                             f"{self.input_device.max_input_channels}")
        self.input_channels = tuple(input_channels)
        self._opened_inputs = max(input_channels)
        self.output_channels = output_channels or min(2, self.output_device.max_output_channels)
        self.unbuffered = unbuffered
        self._delay = worker_delay_blocks if mode == "worker" else 0
        self._budget_s = self.block_size / self.sample_rate

        n, cin = self.block_size, len(self.input_channels)
        self._in_block = np.zeros((n, cin), dtype=np.float32)
        self._out_mono = np.zeros(n, dtype=np.float32)
        self._callback_times = np.zeros(timing_capacity, dtype=np.float64)
        self._worker_times = np.zeros(timing_capacity, dtype=np.float64)
        self._ring_blocks = ring_blocks
        self._dry_history = np.zeros((self._delay + 1, n), dtype=np.float32)

        self._stream: sd.Stream | None = None
        self._worker: threading.Thread | None = None
        self._stop_worker = threading.Event()
        self._stop_requested = False
        self._error: BaseException | None = None
        self._reset_counters()

    # ----------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Prepare the processor, open the stream (latency='low') and start audio."""
        if self._stream is not None:
            raise RuntimeError("runner already started")
        self._reset_counters()
        self._stop_requested = False
        self._error = None
        self.processor.prepare(self.sample_rate, self.block_size)
        if self.mode == "worker":
            self._stop_worker.clear()
            self._worker = threading.Thread(target=self._worker_loop, name="protophone-worker", daemon=True)
            self._worker.start()
        try:
            self._stream = sd.Stream(
                samplerate=self.sample_rate,
                blocksize=0 if self.unbuffered else self.block_size,
                device=(self.input_device.index, self.output_device.index),
                channels=(self._opened_inputs, self.output_channels),
                dtype="float32",
                latency="low",
                callback=self._callback,
            )
            self._stream.start()
            self._stream_latency = (float(self._stream.latency[0]), float(self._stream.latency[1]))
        except BaseException:
            self._close()
            raise

    def stop(self) -> RunReport:
        """Stop and close the stream and the worker; re-raise a processor error from the callback."""
        self._stop_requested = True
        report = self._close()
        if self._error is not None:
            raise self._error
        return report

    def run(self, duration_s: float | None) -> RunReport:
        """Run for ``duration_s`` seconds (None: until ``stop()`` from another thread or Ctrl-C).

        Ctrl-C ends the run cleanly and is reported as ``interrupted`` instead of propagating, so a
        terminal session always gets its figures and a closed stream.
        """
        self.start()
        interrupted = False
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while not self._stop_requested and self._stream is not None and self._stream.active:
                remaining = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if remaining <= 0:
                    break
                time.sleep(remaining)
        except KeyboardInterrupt:
            interrupted = True
        report = self.stop()
        if interrupted:
            report = RunReport(**{**report.__dict__, "interrupted": True})
        return report

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def active(self) -> bool:
        """True while the stream is open and running."""
        return self._stream is not None and self._stream.active

    @property
    def wrong_size_blocks(self) -> int:
        """Running count of callbacks of another size than ``block_size`` (only when ``unbuffered``)."""
        return self._wrong_size_blocks

    @property
    def overloaded_blocks(self) -> int:
        """Running count of :attr:`RunReport.overloaded_blocks`, cheap enough to poll for a display."""
        return self._dry_blocks.count if self.mode == "worker" else self._deadline_misses.count

    def report(self) -> RunReport:
        """Snapshot of the measurements so far (safe while running; counters may be one block apart)."""
        blocks = self._blocks
        worker_blocks = self._worker_blocks
        cap = self._callback_times.size
        return RunReport(
            mode=self.mode,
            sample_rate=self.sample_rate,
            block_size=self.block_size,
            blocks=blocks,
            xruns=self._xruns.count,
            xrun_flags=dict(self._flag_counts),
            deadline_misses=self._deadline_misses.count,
            callback_time=TimingStats.from_seconds(self._callback_times[: min(blocks, cap)].copy()),
            worker_time=(
                TimingStats.from_seconds(self._worker_times[: min(worker_blocks, cap)].copy())
                if self.mode == "worker" else None
            ),
            worker_deadline_misses=self._worker_deadline_misses,
            dry_blocks=self._dry_blocks.count,
            late_blocks=self._late_blocks,
            skipped_blocks=self._skipped_blocks,
            dropped_input_blocks=self._dropped_input_blocks,
            wrong_size_blocks=self._wrong_size_blocks,
            stream_latency_s=self._stream_latency,
            added_latency_samples=self._delay * self.block_size,
            xrun_clock_s=self._xruns.recent(),
            deadline_miss_clock_s=self._deadline_misses.recent(),
            dry_block_clock_s=self._dry_blocks.recent(),
        )

    # ----------------------------------------------------------------------------- internals

    def _reset_counters(self) -> None:
        self._blocks = 0
        self._worker_blocks = 0
        self._xruns = EventClock()
        self._flag_counts = dict.fromkeys(_XRUN_FLAGS, 0)
        self._deadline_misses = EventClock()
        self._worker_deadline_misses = 0
        self._dry_blocks = EventClock()
        self._late_blocks = 0
        self._skipped_blocks = 0
        self._dropped_input_blocks = 0
        self._wrong_size_blocks = 0
        self._stream_latency = (0.0, 0.0)
        self._in_ring = BlockRing(self._ring_blocks, self._in_block.shape)
        self._out_ring = BlockRing(self._ring_blocks, self._out_mono.shape)
        self._dry_history[:] = 0.0

    def _close(self) -> RunReport:
        """Stop the stream first (so the callback no longer runs), then the worker; idempotent.

        A stream that does not stop within ``STOP_TIMEOUT_S`` (its device or server died) is left to its helper
        thread instead of hanging the caller (a late stop): see :func:`portaudio_abandoned`.
        """
        stream, self._stream = self._stream, None
        if stream is not None:
            _stop_and_close(stream, STOP_TIMEOUT_S)
        self._stop_worker.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        return self.report()

    def _processor_input(self, block: np.ndarray) -> np.ndarray:
        """The processor's view of a (n, ch) block: (n,) for mono, as the plugin API documents."""
        return block[:, 0] if block.shape[1] == 1 else block

    def _callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: object,
                  status: sd.CallbackFlags) -> None:
        start = time.monotonic()  # CLOCK_MONOTONIC, as fine-grained as perf_counter on Linux
        k = self._blocks
        if status:
            counted = False
            for name in _XRUN_FLAGS:
                if getattr(status, name):
                    self._flag_counts[name] += 1
                    counted = True
            if counted:
                self._xruns.mark(start)
        if frames != self.block_size:  # only possible when unbuffered; no allocation to adapt it here
            self._wrong_size_blocks += 1
            outdata.fill(0.0)
            return
        try:
            for column, channel in enumerate(self.input_channels):  # a copy: PA reuses indata, the
                np.copyto(self._in_block[:, column], indata[:, channel - 1])  # processor may keep a reference
            if self.mode == "callback":
                np.copyto(self._out_mono, self.processor.process(self._processor_input(self._in_block)))
            else:
                self._exchange_with_worker(self._in_block, k)
            np.copyto(outdata, self._out_mono[:, None])
        except Exception as exc:  # surface in stop(), not as a traceback printed from the audio thread
            self._error = exc
            outdata.fill(0.0)
            raise sd.CallbackAbort from exc
        elapsed = time.monotonic() - start
        self._callback_times[k % self._callback_times.size] = elapsed
        if elapsed > self._budget_s:
            self._deadline_misses.mark(start)
        self._blocks = k + 1

    def _exchange_with_worker(self, indata: np.ndarray, k: int) -> None:
        """Hand block k to the worker and fill ``_out_mono`` with the result for block k - delay,
        or with that block's dry input when the worker has not delivered it in time."""
        if not self._in_ring.push(indata, k):
            self._dropped_input_blocks += 1
        np.mean(indata, axis=1, out=self._dry_history[k % (self._delay + 1)])
        want = k - self._delay
        seq = self._out_ring.peek_seq()
        while seq is not None and seq < want:
            self._out_ring.drop()
            self._late_blocks += 1
            seq = self._out_ring.peek_seq()
        if seq == want:
            self._out_ring.pop_into(self._out_mono)
        elif want >= 0:
            np.copyto(self._out_mono, self._dry_history[want % (self._delay + 1)])
            self._dry_blocks.mark(time.monotonic())
        else:
            self._out_mono.fill(0.0)  # priming: nothing has been played yet

    def _worker_loop(self) -> None:
        """Process blocks in order; poll with a short sleep because waking it from the callback
        would need a lock (Event/Condition) or a syscall inside the audio thread."""
        block = np.zeros_like(self._in_block)
        poll_s = max(self._budget_s / 16, 1e-4)
        while not self._stop_worker.is_set():
            seq = self._in_ring.pop_into(block)
            if seq is None:
                time.sleep(poll_s)
                continue
            if seq + self._delay < self._blocks:  # its slot was already played dry: don't fall behind
                self._skipped_blocks += 1
                continue
            start = time.perf_counter()
            try:
                out = self.processor.process(self._processor_input(block))
            except Exception as exc:  # noqa: BLE001 - any processor failure stops the run; re-raised by stop()
                self._error = exc
                self._stop_requested = True
                return
            elapsed = time.perf_counter() - start
            i = self._worker_blocks
            self._worker_times[i % self._worker_times.size] = elapsed
            self._worker_deadline_misses += elapsed > self._budget_s
            self._worker_blocks = i + 1
            while not self._out_ring.push(out, seq):  # full only if the callback stopped reading
                if self._stop_worker.is_set():
                    return
                time.sleep(poll_s)


if __name__ == "__main__":
    for device in list_devices():
        print(device)
