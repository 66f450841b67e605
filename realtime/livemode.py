"""Live mode: the engine on a duplex sound device, watched from the main thread until time or Ctrl-C.

Audio runs in :class:`realtime.audio.DuplexRunner`'s callback; :func:`perform` only starts it, polls
snapshots ten times a second for the display and the per-second identification log, and notices a
device that stopped delivering callbacks (unplugged, server gone).  Whatever ends the run, the stream is
closed and the recording (:class:`realtime.recorder.Recorder`) completed.  File mode's ``--play`` uses
:func:`perform` too, with the file standing in for the device's input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from engine.processor import Processor
from realtime.cli_errors import AudioDeviceError, audio_module, device_not_found, stream_failed
from realtime.display import Display, View
from realtime.metering import MeteredProcessor, SecondLog
from realtime.recorder import Recorder
from realtime.rtpolicy import audio_thread_policy

if TYPE_CHECKING:
    from realtime.audio import DeviceInfo, DuplexRunner, RunReport

POLL_S = 0.1
#: No callback for this long while the stream should run means the device is gone.
STALL_S = 2.0


@dataclass(frozen=True)
class LiveSettings:
    input_device: int | str | None
    output_device: int | str | None
    sample_rate: int | None  # None: the input device's default rate
    block_size: int
    duration_s: float | None  # None: until Ctrl-C
    record_path: Path | None


@dataclass(frozen=True)
class Performance:
    """What :func:`perform` saw: the runner's measurements, the per-second log, how it ended."""

    report: RunReport
    per_second: list[dict]
    interrupted: bool


def resolve_devices(input_spec: int | str | None, output_spec: int | str | None) -> tuple[DeviceInfo, DeviceInfo]:
    """The input and output devices asked for (None: the defaults), or a one-line error that lists them."""
    audio = audio_module()
    try:
        return audio.resolve_device(input_spec, "input"), audio.resolve_device(output_spec, "output")
    except audio.DeviceNotFoundError as error:
        raise device_not_found(error) from None


def perform(proc: Processor, metered: MeteredProcessor, runner: DuplexRunner, display: Display,
            finished: Callable[[float], bool], recorder: Recorder | None = None) -> Performance:
    """Start ``runner`` (which drives ``metered``), watch until ``finished(seconds since start)`` or Ctrl-C,
    stop, close."""
    audio = audio_module()
    seconds = SecondLog(runner.sample_rate)
    with audio_thread_policy():
        try:
            try:
                runner.start()
            except audio.sd.PortAudioError as error:
                raise stream_failed(error, runner.sample_rate, runner.input_device) from None
            interrupted, lost = watch(proc, runner, metered, seconds, display, finished)
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
    return Performance(report, seconds.entries, interrupted)


def stream_summary(proc: Processor, metered: MeteredProcessor, performance: Performance) -> dict:
    """The summary fields every run on a device shares (see ``realtime.live``)."""
    report = performance.report
    stream_in_s, stream_out_s = report.stream_latency_s
    engine_ms = 1e3 * proc.latency_samples / report.sample_rate
    return {
        "sample_rate": report.sample_rate,
        "block_size": report.block_size,
        "latency": {"engine_ms": engine_ms, "stream_in_ms": 1e3 * stream_in_s, "stream_out_ms": 1e3 * stream_out_s,
                    "total_ms": engine_ms + 1e3 * (stream_in_s + stream_out_s)},
        "xruns": report.xruns,
        "xrun_flags": report.xrun_flags,
        "deadline_misses": report.deadline_misses,
        "processing": metered.timing(),
        "callback_ms": {"p50": report.callback_time.p50_ms, "p99": report.callback_time.p99_ms,
                        "max": report.callback_time.max_ms},
        "per_second": performance.per_second,
        "clip_label": proc.clip_label,
        "interrupted": performance.interrupted,
    }


def run_live(proc: Processor, settings: LiveSettings, display: Display) -> dict:
    """Run until ``duration_s`` or Ctrl-C; return the run's summary (see ``realtime.live``)."""
    input_device, output_device = resolve_devices(settings.input_device, settings.output_device)
    rate = settings.sample_rate or int(input_device.default_samplerate)
    metered = MeteredProcessor(proc)
    runner = audio_module().DuplexRunner(metered, sample_rate=rate, block_size=settings.block_size,
                                         input_device=input_device.index, output_device=output_device.index)
    recorder = Recorder(settings.record_path, rate, settings.block_size) if settings.record_path else None
    metered.on_output = None if recorder is None else recorder.push
    duration_s = settings.duration_s

    def finished(elapsed_s: float) -> bool:
        return duration_s is not None and elapsed_s >= duration_s

    performance = perform(proc, metered, runner, display, finished, recorder)
    report = performance.report
    return {
        "source": "live",
        "input_device": str(input_device),
        "output_device": str(output_device),
        "output": None if recorder is None else str(recorder.path),
        "duration_s": report.blocks * report.block_ms / 1e3,
        "recorder_dropped_blocks": 0 if recorder is None else recorder.dropped_blocks,
        **stream_summary(proc, metered, performance),
    }


def watch(proc: Processor, runner: DuplexRunner, metered: MeteredProcessor, seconds: SecondLog, display: Display,
          finished: Callable[[float], bool]) -> tuple[bool, bool]:
    """Feed the display and the per-second log until ``finished``; return (interrupted, device lost)."""
    rate, block_size = runner.sample_rate, runner.block_size
    report = runner.report()
    latency_ms = 1e3 * proc.latency_samples / rate + 1e3 * sum(report.stream_latency_s)
    started = last_progress = time.monotonic()
    last_blocks = 0
    try:
        while not finished(time.monotonic() - started):
            time.sleep(POLL_S)
            now, blocks = time.monotonic(), metered.blocks
            if blocks != last_blocks:
                last_blocks, last_progress = blocks, now
            if not runner.active or now - last_progress > STALL_S:
                return False, True
            done = blocks * block_size
            if done // rate > len(seconds.entries):  # the runner's report sorts its timings: once a second
                report = runner.report()
            seconds.observe(done, lambda: proc.identification)
            levels = metered.take_levels()
            display.update(View(proc.identification, proc.mode, proc.target, levels.input_db, levels.output_db,
                                latency_ms, levels.dsp_load, report.xruns, metered.deadline_misses, done / rate))
    except KeyboardInterrupt:
        return True, False
    return False, False
