"""File mode: a sound file through the same block-by-block streaming path as a live performance.

The file is cut into host-sized blocks and fed to the metered engine, as fast as possible or paced at
real time (``pace``), read and written block by block as ``Processor.process_file`` does
(:func:`engine.filestream.stream_file`): an hour of audio needs the memory of a few blocks.  With ``play``
the file stands in for the input of a duplex device: the engine runs in the device's callback exactly as
in live mode (:func:`realtime.devicemode.perform`) and the output is heard; then the file is held in memory,
because the callback may not read the disk.  Either way the output is aligned with the input and as long
as it.  No sound card (and no PortAudio) is needed unless ``play``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from engine.audiofile import clipped_samples, matching_subtype, open_audio, read_audio, write_audio
from engine.errors import AudioFileError
from engine.filestream import FileRun, stream_file
from engine.processor import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Processor
from realtime.cli_errors import AudioDeviceError
from realtime.devicemode import (
    ProcessingChoice,
    engine_latency_ms,
    hop_at_rate,
    open_runner,
    perform,
    plan_processing,
    resolve_devices,
    stream_summary,
)
from realtime.display import Display, View, latency_text
from realtime.metering import MeteredProcessor, SecondLog
from realtime.rtpolicy import audio_thread_policy
from realtime.timeline import Timeline, draw_timeline

#: Seconds of audio between display updates.
UPDATE_S = 0.1


@dataclass(frozen=True)
class FileSettings:
    input_path: Path
    output_path: Path | None
    sample_rate: int | None  # None: the file's own rate, or with ``play`` the device's
    block_size: int
    pace: bool
    play: bool
    input_device: int | str | None
    output_device: int | str | None
    processing: ProcessingChoice = "auto"  # with ``play``: see realtime.devicemode.plan_processing
    worker_delay_blocks: int | None = None
    unbuffered: bool = False  # with ``play``: see realtime.devicemode.LiveSettings
    timeline_path: Path | None = None  # without ``play``: where the timeline picture goes (realtime.timeline)
    client_name: str | None = None  # with ``play``: see realtime.devicemode.LiveSettings


class FileSource:
    """The file, block by block, through the metered engine; also a processor for ``DuplexRunner`` that
    ignores the device's input.  Storage is preallocated, so it is safe in an audio callback."""

    def __init__(self, metered: MeteredProcessor, audio: np.ndarray, latency: int, block_size: int) -> None:
        self.metered = metered
        self.length = len(audio)
        self.latency = latency
        total = len(audio) + latency
        padded = -(-total // block_size) * block_size  # whole blocks, so no callback ever slices short
        self._input = np.zeros(padded, dtype=np.float32)
        self._input[: len(audio)] = audio
        self._output = np.zeros(padded, dtype=np.float32)
        self._silence = np.zeros(block_size, dtype=np.float32)
        self._total = total
        self.position = 0

    @property
    def done(self) -> bool:
        return self.position >= self._total

    @property
    def heard(self) -> int:
        """Input samples processed so far (the latency flush not counted)."""
        return min(self.position, self.length)

    def prepare(self, sample_rate: int, block_size: int) -> None:
        self.metered.prepare(sample_rate, block_size)
        self.position = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process the file's next ``len(block)`` samples (``block`` itself is ignored); silence once done."""
        start = self.position
        if start >= len(self._input):
            return self._silence[: len(block)]
        out = self._output[start : start + len(block)] = self.metered.process(self._input[start : start + len(block)])
        self.position = start + len(block)
        return out

    def output(self) -> np.ndarray:
        """What was processed, aligned with the input (the first ``latency`` samples dropped)."""
        return self._output[self.latency : min(self.position, self._total)]


def run_file(proc: Processor, settings: FileSettings, display: Display) -> dict:
    """Stream the file; write the aligned output; return the run's summary (see ``realtime.live``)."""
    subtype = None if settings.output_path is None else matching_subtype(settings.input_path, settings.output_path)
    run = play_file if settings.play else stream_from_disk
    started = time.perf_counter()
    summary = run(proc, settings, subtype, display)
    elapsed = time.perf_counter() - started  # the run, not the picture drawn after it
    timeline = summary.pop("timeline", None)
    if timeline is not None and settings.timeline_path is not None:
        heard = f"heard {proc.clip_label}" if proc.clip_label else "heard nothing"
        draw_timeline(timeline, settings.input_path, settings.timeline_path,
                      f"{settings.input_path.name}: {heard} ({proc.preset.name}, {proc.mode})")
    return {
        "source": "file",
        "offline": not settings.play,  # no device: xruns and deadlines mean nothing, speed does
        "wall_s": elapsed,
        "input": str(settings.input_path),
        "output": None if settings.output_path is None else str(settings.output_path),
        "realtime_factor": elapsed * summary["sample_rate"] / max(summary.pop("samples_processed"), 1),
        **summary,
    }


def host_rate_for(settings: FileSettings, file_rate: int, device_rate: int | None = None) -> int:
    """``--sample-rate``, else the device's (with ``play``), else the file's own; refused outside the engine's."""
    rate = settings.sample_rate or device_rate or file_rate
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioFileError(f"{settings.input_path} is sampled at {file_rate} Hz, outside the {MIN_SAMPLE_RATE}.."
                             f"{MAX_SAMPLE_RATE} Hz Protophone plays; add --sample-rate 48000 to resample it")
    return rate


def stream_from_disk(proc: Processor, settings: FileSettings, subtype: str | None, display: Display) -> dict:
    """The file through the engine with no device, disk to disk in constant memory (engine.filestream): as
    fast as possible, or paced at real time; with ``settings.timeline_path`` the summary's ``timeline`` holds
    the identification for the picture."""
    with open_audio(settings.input_path) as file:
        rate = host_rate_for(settings, file.samplerate)
        metered = MeteredProcessor(proc)
        metered.prepare(rate, settings.block_size)
        shown_latency = latency_text(engine_latency_ms(proc, rate))
        moved = proc.preset.transpose + proc.register_shift
        seconds = SecondLog(rate)
        timeline = None if settings.timeline_path is None else Timeline(proc.metadata.class_names, rate)
        update_every = max(1, round(UPDATE_S * rate / settings.block_size))
        total_s = file.frames / file.samplerate
        started = time.perf_counter()
        processed = 0

        def after_block(run: FileRun) -> None:
            nonlocal processed, moved, shown_latency
            processed += settings.block_size
            seconds.observe(run.heard, lambda: proc.identification)
            if timeline is not None:
                timeline.observe(run.heard, lambda: proc.identification)
            if settings.pace:
                time.sleep(max(0.0, started + processed / rate - time.perf_counter()))
            if processed // settings.block_size % update_every == 1:
                if proc.preset.transpose + proc.register_shift != moved:  # the register's octaves move the shifter
                    moved, shown_latency = proc.preset.transpose + proc.register_shift, latency_text(
                        engine_latency_ms(proc, rate))
                levels = metered.take_levels()
                heard_s, wall_s = run.heard / rate, time.perf_counter() - started
                display.update(View(proc.identification, proc.mode, proc.target, levels.input_db, levels.output_db,
                                    shown_latency, levels.dsp_load, 0, metered.deadline_misses, heard_s,
                                    proc.preset.mix, proc.preset.transpose, proc.register_shift, offline=True,
                                    total_s=total_s,
                                    eta_s=wall_s * (total_s - heard_s) / heard_s if heard_s > 0 else None))

        with audio_thread_policy():
            run = stream_file(metered.process, file, rate, settings.block_size, proc.latency_samples,
                              proc.flush_samples, settings.output_path, subtype, after_block)
    return {
        "duration_s": run.heard / rate,
        "samples_processed": processed,
        "clipped_samples": run.clipped_samples,
        "sample_rate": rate,
        "block_size": settings.block_size,
        "latency": engine_latency_ms(proc, rate),  # as the run ended: with the last phrase's register octaves
        "xruns": 0,
        "deadline_misses": metered.deadline_misses,
        "processing": metered.timing(),
        "per_second": seconds.entries,
        "timeline": timeline,  # taken out by run_file, which draws it
        "clip_label": proc.clip_label,
        "interrupted": run.interrupted,
    }


def play_file(proc: Processor, settings: FileSettings, subtype: str | None, display: Display) -> dict:
    """The file as a duplex device's input, heard on its output.  The audio callback must not read the disk,
    so the file is held in memory (:class:`FileSource`) and the output written at the end."""
    audio, file_rate = read_audio(settings.input_path)
    devices = resolve_devices(settings.input_device, settings.output_device, settings.client_name)
    rate = host_rate_for(settings, file_rate, int(devices[0].default_samplerate))
    if rate != file_rate:
        audio = soxr.resample(audio, file_rate, rate).astype(np.float32)
    metered = MeteredProcessor(proc)
    metered.prepare(rate, settings.block_size)  # latency_samples is known once prepared
    source = FileSource(metered, audio, proc.latency_samples, settings.block_size)
    plan = plan_processing(settings.processing, settings.block_size, hop_at_rate(proc, rate),
                           settings.worker_delay_blocks)
    runner = open_runner(source, rate, settings.block_size, devices[0].index, devices[1].index, plan,
                         unbuffered=settings.unbuffered)
    try:
        outcome = perform(proc, metered, runner, display, lambda elapsed_s: source.done)
    except AudioDeviceError as error:  # the device went away: keep what was played, as live mode does
        if settings.output_path is None:
            raise
        write_audio(settings.output_path, source.output(), rate, subtype)
        raise AudioDeviceError(f"{error}; the output so far is in {settings.output_path}") from None
    if settings.output_path is not None:
        write_audio(settings.output_path, source.output(), rate, subtype)
    return {
        "duration_s": source.heard / rate,
        "samples_processed": source.position,
        "clipped_samples": clipped_samples(source.output(), settings.output_path, subtype),
        **stream_summary(proc, metered, outcome),
    }
