"""Device mode: the engine on a duplex sound device, watched from the main thread until time or Ctrl-C.

Audio runs through :class:`realtime.audio.DuplexRunner`, with the engine in the audio callback or on a
worker thread (:func:`plan_processing` picks); :func:`perform` only starts it, polls snapshots ten times
a second for the display and the per-second identification log, and notices a device that stopped
delivering callbacks (unplugged, server gone).  Whatever ends the run, the stream is
closed and the recording (:class:`realtime.recorder.Recorder`) completed.  File mode's ``--play`` uses
:func:`perform` too, with the file standing in for the device's input.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine.processor import Processor
from realtime.cli_errors import AudioDeviceError, audio_module, device_not_found, stream_failed
from realtime.controls import LiveControls, keys_help
from realtime.display import Display, View, latency_text
from realtime.metering import MeteredProcessor, SecondLog
from realtime.recorder import Recorder
from realtime.rtpolicy import audio_thread_policy

if TYPE_CHECKING:
    from realtime.audio import BlockProcessor, DeviceInfo, DuplexRunner, RunReport

POLL_S = 0.1
#: The JACK client name of the engine's stream (PortAudio's own default, "PortAudio", names no program).
DEFAULT_CLIENT_NAME = "protophone"
#: No callback for this long while the stream should run means the device is gone.
STALL_S = 2.0


#: ``--processing``: where the engine runs relative to the audio callback.
ProcessingChoice = Literal["auto", "callback", "worker"]


@dataclass(frozen=True)
class ProcessingPlan:
    """Where the engine runs, and how many blocks of slack (and added latency) the worker gets."""

    mode: Literal["callback", "worker"]
    worker_delay_blocks: int = 0


def plan_processing(choice: ProcessingChoice, block_size: int, hop_samples: float,
                    worker_delay_blocks: int | None = None) -> ProcessingPlan:
    """Decide where the engine runs for blocks of ``block_size`` when it computes a frame every ``hop_samples``.

    ``auto`` keeps the engine in the callback when a block is at least half a hop: each callback then
    has the time of half a model frame or more to compute it (about 1 ms), and adding latency buys
    nothing.  With smaller blocks one callback in ``hop / block`` computes a whole frame and the others
    almost nothing, so a 128-sample period (2.7 ms) overruns whenever that frame is slowed down; on the
    worker, with a delay of ``ceil(hop / block)`` blocks, the frame's cost is spread over a hop instead.
    """
    if choice not in ("auto", "callback", "worker"):
        raise ValueError(f"processing must be auto, callback or worker, got {choice!r}")
    if choice == "callback" or (choice == "auto" and 2 * block_size > hop_samples):
        return ProcessingPlan("callback")
    delay = worker_delay_blocks or max(1, math.ceil(hop_samples / block_size))
    return ProcessingPlan("worker", delay)


def open_runner(processor: BlockProcessor, rate: int, block_size: int, input_device: int | str,
                output_device: int | str, plan: ProcessingPlan, **options: Any) -> DuplexRunner:
    """A duplex runner that drives ``processor`` as ``plan`` says (rings sized for the worker's delay);
    ``options`` go to :class:`realtime.audio.DuplexRunner` (e.g. ``unbuffered``)."""
    return audio_module().DuplexRunner(processor, sample_rate=rate, block_size=block_size, input_device=input_device,
                                       output_device=output_device, mode=plan.mode,
                                       worker_delay_blocks=max(1, plan.worker_delay_blocks),
                                       ring_blocks=max(8, 2 * plan.worker_delay_blocks + 2), **options)


def hop_at_rate(proc: Processor, rate: int) -> int:
    """The engine's hop in samples of a stream at ``rate`` (the model's hop at that rate, as the engine runs)."""
    return proc.analysis.at_rate(rate).hop


@dataclass(frozen=True)
class LiveSettings:
    input_device: int | str | None
    output_device: int | str | None
    sample_rate: int | None  # None: the input device's default rate
    block_size: int
    duration_s: float | None  # None: until Ctrl-C
    record_path: Path | None
    processing: ProcessingChoice = "auto"
    worker_delay_blocks: int | None = None  # None: one hop's worth of blocks
    unbuffered: bool = False  # --latency low: the device's own period, without PortAudio's extra block
    input_channels: tuple[int, ...] = (1,)  # the input device's channels (from 1) the engine hears, mixed
    client_name: str | None = None  # the stream's JACK client name (None: DEFAULT_CLIENT_NAME)


@dataclass(frozen=True)
class StreamOutcome:
    """What :func:`perform` saw: the runner's measurements, the per-second log, how it ended."""

    report: RunReport
    per_second: list[dict]
    interrupted: bool


def resolve_devices(input_spec: int | str | None, output_spec: int | str | None,
                    client_name: str | None = None) -> tuple[DeviceInfo, DeviceInfo]:
    """The input and output devices asked for (None: the defaults), or a one-line error that lists them.

    PortAudio's JACK client is named first (``client_name``, None: ``DEFAULT_CLIENT_NAME``): PortAudio opens
    it, and enumerates the devices, when it initialises."""
    audio = audio_module()
    try:
        audio.name_jack_client(client_name or DEFAULT_CLIENT_NAME)
    except ValueError as error:
        raise AudioDeviceError(f"{error} (--client-name)") from None
    try:
        return audio.resolve_device(input_spec, "input"), audio.resolve_device(output_spec, "output")
    except audio.DeviceNotFoundError as error:
        raise device_not_found(error) from None


def perform(proc: Processor, metered: MeteredProcessor, runner: DuplexRunner, display: Display,
            finished: Callable[[float], bool], recorder: Recorder | None = None,
            controls: LiveControls | None = None) -> StreamOutcome:
    """Start ``runner`` (which drives ``metered``), watch until ``finished(seconds since start)`` or Ctrl-C
    (applying ``controls`` meanwhile), stop, close."""
    audio = audio_module()
    seconds = SecondLog(runner.sample_rate)
    with audio_thread_policy():
        try:
            try:
                runner.start()
            except audio.sd.PortAudioError as error:
                raise stream_failed(error, runner.sample_rate, runner.input_device) from None
            interrupted, lost = watch(proc, runner, metered, seconds, display, finished, controls)
            report = runner.stop()
        finally:
            runner.stop()  # idempotent: a failed start or an error above still closes the stream
            if recorder is not None:
                recorder.close()
    if lost:
        raise AudioDeviceError(f"audio device {runner.input_device} stopped delivering audio after "
                               f"{report.blocks * report.block_ms / 1e3:.1f} s (unplugged or server gone?); "
                               + (f"the output so far is in {recorder.path}" if recorder else
                                  "check it with --list-devices"))
    return StreamOutcome(report, seconds.entries, interrupted)


def engine_parts_ms(proc: Processor, rate: int) -> dict[str, float]:
    """The engine's latency by cause (``Processor.latency_parts``), in ms."""
    return {part: 1e3 * samples / rate for part, samples in proc.latency_parts().items()}


def engine_latency_ms(proc: Processor, rate: int) -> dict:
    """The engine's own latency in ms (a file run's whole latency): its parts by cause, and the transposing
    shifter's average delay; beside them, how late the harmonic carrier's pitch follows (not in the total: the
    sound is not late, a new note's pitch is)."""
    engine_ms = 1e3 * proc.latency_samples / rate
    shifter_ms = 1e3 * proc.shifter_delay_samples / rate
    return {"engine_ms": engine_ms, "engine_parts_ms": engine_parts_ms(proc, rate), "shifter_ms": shifter_ms,
            "total_ms": engine_ms + shifter_ms, "pitch_lag_ms": 1e3 * proc.pitch_lag_samples / rate}


def latency_ms(proc: Processor, report: RunReport) -> dict:
    """The run's latency and its parts in ms: the engine's (:func:`engine_latency_ms`), the worker's, the
    device's each way."""
    stream_in_s, stream_out_s = report.stream_latency_s
    engine = engine_latency_ms(proc, report.sample_rate)
    worker_ms = 1e3 * report.added_latency_samples / report.sample_rate
    return {**engine, "worker_ms": worker_ms, "stream_in_ms": 1e3 * stream_in_s, "stream_out_ms": 1e3 * stream_out_s,
            "total_ms": engine["total_ms"] + worker_ms + 1e3 * (stream_in_s + stream_out_s)}


def stream_summary(proc: Processor, metered: MeteredProcessor, outcome: StreamOutcome) -> dict:
    """The summary fields every run on a device shares (see ``realtime.live``)."""
    report = outcome.report
    return {
        "sample_rate": report.sample_rate,
        "block_size": report.block_size,
        "latency": latency_ms(proc, report),
        "xruns": report.xruns,
        "xrun_flags": report.xrun_flags,
        "xrun_clock_s": list(report.xrun_clock_s),
        "deadline_misses": report.deadline_misses,
        "deadline_miss_clock_s": list(report.deadline_miss_clock_s),
        "overloaded_blocks": report.overloaded_blocks,
        "wrong_size_blocks": report.wrong_size_blocks,
        "audio_thread": audio_thread_summary(report),
        "processing": metered.timing(),
        "callback_ms": {"p50": report.callback_time.p50_ms, "p99": report.callback_time.p99_ms,
                        "max": report.callback_time.max_ms},
        "per_second": outcome.per_second,
        "clip_label": proc.clip_label,
        "interrupted": outcome.interrupted,
    }


def audio_thread_summary(report: RunReport) -> dict:
    """Where the engine ran and, on the worker, every use of the overload policy."""
    if report.mode == "callback":
        return {"mode": "callback"}
    worker = report.worker_time
    return {"mode": "worker", "worker_delay_blocks": report.added_latency_samples // report.block_size,
            "dry_blocks": report.dry_blocks, "late_blocks": report.late_blocks,
            "skipped_blocks": report.skipped_blocks, "dropped_input_blocks": report.dropped_input_blocks,
            "worker_deadline_misses": report.worker_deadline_misses,
            "worker_ms": {"p50": worker.p50_ms, "p99": worker.p99_ms, "max": worker.max_ms} if worker else None}


def run_live(proc: Processor, settings: LiveSettings, display: Display, controls: LiveControls | None = None) -> dict:
    """Run until ``duration_s`` or Ctrl-C, ``controls`` (keys, MIDI) applied meanwhile; return the run's
    summary (see ``realtime.live``)."""
    input_device, output_device = resolve_devices(settings.input_device, settings.output_device, settings.client_name)
    rate = settings.sample_rate or int(input_device.default_samplerate)
    metered = MeteredProcessor(proc)
    plan = plan_processing(settings.processing, settings.block_size, hop_at_rate(proc, rate),
                           settings.worker_delay_blocks)
    try:
        runner = open_runner(metered, rate, settings.block_size, input_device.index, output_device.index, plan,
                             unbuffered=settings.unbuffered, input_channels=settings.input_channels)
    except ValueError as error:  # an input channel the device does not have
        raise AudioDeviceError(f"{error} (see --list-devices)") from None
    recorder = Recorder(settings.record_path, rate, settings.block_size) if settings.record_path else None
    metered.on_output = None if recorder is None else recorder.push
    duration_s = settings.duration_s

    def finished(elapsed_s: float) -> bool:  # a recording that cannot go on ends the run, its part kept
        timed_out = duration_s is not None and elapsed_s >= duration_s
        return timed_out or (recorder is not None and recorder.error is not None)

    outcome = perform(proc, metered, runner, display, finished, recorder, controls)
    report = outcome.report
    return {
        "source": "live",
        "input_device": str(input_device),
        "output_device": str(output_device),
        "output": None if recorder is None else str(recorder.path),
        "duration_s": report.blocks * report.block_ms / 1e3,
        "recorder_dropped_blocks": 0 if recorder is None else recorder.dropped_blocks,
        "recording_error": None if recorder is None else recorder.error,
        **stream_summary(proc, metered, outcome),
    }


def watch(proc: Processor, runner: DuplexRunner, metered: MeteredProcessor, seconds: SecondLog, display: Display,
          finished: Callable[[float], bool], controls: LiveControls | None = None) -> tuple[bool, bool]:
    """Feed the display and the per-second log, and apply ``controls``, until ``finished``; return
    (interrupted, device lost)."""
    rate, block_size = runner.sample_rate, runner.block_size
    report = runner.report()
    moved = proc.preset.transpose + proc.register_shift
    latency = latency_text(latency_ms(proc, report))
    thread = "callback" if runner.mode == "callback" else f"worker, {report.added_latency_samples // block_size} blocks"
    stream = f"{rate} Hz / {block_size} ({thread})"
    keys = keys_help() if controls is not None and controls.keys is not None else ""
    started = last_progress = time.monotonic()
    last_blocks = 0
    try:
        while not finished(time.monotonic() - started):
            time.sleep(POLL_S)
            now, blocks = time.monotonic(), metered.blocks
            if blocks != last_blocks:
                last_blocks, last_progress = blocks, now
            if runner.wrong_size_blocks:
                raise AudioDeviceError(f"{runner.input_device} calls back with blocks of another size than "
                                       f"{block_size}: with --latency low give its own period as --block-size "
                                       "(JACK: the server's -p, see jack_bufsize), or leave out --latency low")
            if not runner.active or now - last_progress > STALL_S:
                return False, True
            done = blocks * block_size
            if done // rate > len(seconds.entries):  # the runner's report sorts its timings: once a second
                report = runner.report()
            seconds.observe(done, lambda: proc.identification)
            message = controls.poll() if controls is not None else ""
            if proc.preset.transpose + proc.register_shift != moved:  # the shifter's delay comes and goes with them
                moved, latency = proc.preset.transpose + proc.register_shift, latency_text(latency_ms(proc, report))
            levels = metered.take_levels()
            display.update(View(proc.identification, proc.mode, proc.target, levels.input_db, levels.output_db,
                                latency, levels.dsp_load, report.xruns, runner.overloaded_blocks, done / rate,
                                proc.preset.mix, proc.preset.transpose, proc.register_shift, message, keys, stream))
    except KeyboardInterrupt:
        return True, False
    return False, False
