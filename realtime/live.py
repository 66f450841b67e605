"""Play through Protophone: hear what instrument you are, or sound like another one.

Live (a duplex sound device, at its own rate: the engine analyses at that rate, no resampler):
  python -m realtime.live --preset violin                     # play anything, hear a violin
  python -m realtime.live --preset identify --mode identify   # just name the instrument
  python -m realtime.live --preset violin --transpose -12 --mix 0.7 --output take1.wav
  python -m realtime.live --input-device "USB Audio" --output-device 3 --block-size 256
  python -m realtime.live --preset violin-lowlatency --block-size 128 --latency low   # 8 ms through JACK
  python -m realtime.live --preset flute --carrier prototype              # hear the flute prototype itself

Files (the same streaming path, no sound card needed):
  python -m realtime.live --preset violin --input demo --output out.wav   # presets/demo.flac
  python -m realtime.live --preset violin --input cello.wav --output out.wav --json
  python -m realtime.live --preset identify --input takes/ --output heard/  # every file; .json report, .png timeline
  python -m realtime.live --input demo --output out.wav --realtime --play   # paced and heard

Find things:
  python -m realtime.live --list-presets
  python -m realtime.live --list-devices

Every problem is reported as one line on stderr with what to do, and a non-zero exit status.
With --json a machine-readable summary is printed at exit: final and per-second identification,
measured latency, xruns, deadline misses and DSP load (processing time / block time).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from engine.atomic import check_output, write_text
from engine.audiofile import AUDIO_EXTENSIONS
from engine.errors import PresetError, ProtophoneError, UsageError
from engine.modelfile import read_metadata
from engine.parameters import SETTINGS, add_setting_flags
from engine.preset import available_presets, load_preset, presets_dir, save_preset
from engine.processor import MAX_BLOCK_SIZE, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Processor
from presets import demo_file
from realtime.cli_errors import NO_DEVICE_HINT, AudioDeviceError, audio_module
from realtime.controls import MIDI_APIS, LiveControls, MidiError, MidiInput, MidiMap, TerminalKeys, keys_help
from realtime.devicemode import DEFAULT_CLIENT_NAME, LiveSettings, run_live
from realtime.display import Display, latency_text
from realtime.filemode import FileSettings, run_file

DEMO_FILE = demo_file()
EXIT_ERROR = 2
#: Settings of the identification readout: their own group in --help.
READOUT_SETTINGS = ("gate_db", "time_constant_s", "hold_s", "min_confidence")
EXIT_INTERRUPTED = 130
#: Highest --input-channel accepted (the device's own count is checked when it opens).
MAX_INPUT_CHANNEL = 64


def device_spec(text: str) -> int | str:
    """A device given as an index ("3") or a (partial) name ("USB Audio")."""
    return int(text) if text.strip().isdigit() else text


def channel_list(text: str) -> tuple[int, ...]:
    """An argparse type: channel numbers from 1, comma-separated ("2" or "1,2"), each at most once."""
    try:
        channels = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"give channel numbers from 1, comma-separated (e.g. 2 or 1,2), got {text!r}") from None
    if min(channels) < 1 or max(channels) > MAX_INPUT_CHANNEL or len(set(channels)) != len(channels):
        raise argparse.ArgumentTypeError(f"channels are 1..{MAX_INPUT_CHANNEL}, each once, got {text!r}")
    return channels


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer within ``low..high``, else argparse's one-line usage error."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value
    return parse


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line, like every other error of the command (argparse would print
    the whole usage, a dozen lines, above the one that matters)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"protophone: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m realtime.live", description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_argument_group("what to play")
    what.add_argument("--preset", default="violin",
                      help="preset name (see --list-presets), preset .yaml or model .pt (default: violin)")
    add_setting_flags(what, [name for name in SETTINGS if name not in READOUT_SETTINGS])
    what.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs (default: cpu)")

    add_setting_flags(parser.add_argument_group("the live readout"), READOUT_SETTINGS)

    audio = parser.add_argument_group("audio")
    audio.add_argument("--input-device", type=device_spec, metavar="INDEX|NAME",
                       help="live input (default: the system's default)")
    audio.add_argument("--output-device", type=device_spec, metavar="INDEX|NAME",
                       help="live or --play output (default: the system's default)")
    audio.add_argument("--input-channel", type=channel_list, default=(1,), metavar="N[,N...]",
                       help="the input device's channels the engine hears, from 1; several are mixed "
                            "(default: 1; e.g. 2 for an interface's second input)")
    audio.add_argument("--client-name", metavar="NAME",
                       help="the JACK client's name, which its ports carry (NAME:in_0, NAME:out_0; "
                            "default: protophone)")
    audio.add_argument("--sample-rate", type=bounded_int(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), metavar="HZ",
                       help="stream rate (default: the device's own; in file mode the file's)")
    audio.add_argument("--block-size", type=bounded_int(1, MAX_BLOCK_SIZE), metavar="SAMPLES",
                       help="samples per audio callback (default: the model's hop, e.g. 512)")
    audio.add_argument("--duration", type=positive_float, metavar="SECONDS",
                       help="stop a live run after this long (default: Ctrl-C)")
    audio.add_argument("--processing", choices=("auto", "callback", "worker"), default="auto",
                       help="where the engine runs: in the audio callback (no added latency) or on a worker thread "
                            "fed by lock-free rings (--worker-delay blocks of added latency; a block not ready in "
                            "time is played dry and counted). auto (default): the worker for blocks of at most half "
                            "the model's hop, where one callback in several computes a whole model frame")
    audio.add_argument("--latency", choices=("normal", "low"), default="normal",
                       help="low: open the device at its own period, without the block PortAudio's JACK host API "
                            "otherwise buffers (one block less latency); --block-size must then be the device's "
                            "period (JACK: the server's -p). normal (default) accepts any block size")
    audio.add_argument("--worker-delay", type=bounded_int(1, 64), metavar="BLOCKS",
                       help="worker mode: blocks of slack, and of added latency (default: one hop's worth)")

    files = parser.add_argument_group("files")
    files.add_argument("--input", metavar="FILE|FOLDER|demo",
                       help="process a sound file instead of a live input ('demo' is presets/demo.flac), or every "
                            "sound file in a folder and its sub-folders")
    files.add_argument("--output", type=Path, metavar="OUT.wav|FOLDER",
                       help="write the output: the processed file, a recording of a live run, or with a folder "
                            "input a folder of processed files at the same relative paths, each with a .json report; "
                            "a processed file gets its timeline beside it (OUT.png: what was heard when, above the "
                            "waveform)")
    files.add_argument("--save-preset", type=Path, metavar="FILE.yaml",
                       help="write this run's settings (the preset's with the flags above) as a preset that "
                            "--preset FILE.yaml plays back identically")
    files.add_argument("--realtime", action="store_true", help="file mode: pace processing at real time")
    files.add_argument("--play", action="store_true",
                       help="file mode: also hear it; the engine then runs in the callback of the duplex device "
                            "(--input-device/--output-device; its input is ignored), paced by its clock")

    control = parser.add_argument_group(
        "live control", "on a terminal, keys change the run as it plays: " + keys_help().replace("%", "%%"))
    control.add_argument("--midi", metavar="PORT|virtual",
                         help="take control from this MIDI input (a unique part of its name), or 'virtual': open "
                              "the engine's own port to connect a controller to. Program change N: class N as the "
                              "target (transfer mode); the CCs below: mix and transpose")
    control.add_argument("--midi-api", choices=MIDI_APIS,
                         help="the MIDI system: alsa (default) or jack (the port then is a JACK MIDI port, "
                              "NAME-midi:control with --midi virtual, NAME the --client-name)")
    control.add_argument("--midi-mix-cc", type=bounded_int(0, 119), metavar="CC",
                         help=f"control change that sets the mix, 0..127 to 0..1 (default {MidiMap.mix_cc}, "
                              "the modulation wheel)")
    control.add_argument("--midi-transpose-cc", type=bounded_int(0, 119), metavar="CC",
                         help=f"control change that sets the transposition, 64 none, 0 and 127 -/+24 semitones "
                              f"(default {MidiMap.transpose_cc})")

    info = parser.add_argument_group("information")
    info.add_argument("--json", action="store_true", help="print a JSON summary at exit (the live view goes to stderr)")
    info.add_argument("--list-presets", action="store_true", help="list presets with their descriptions and exit")
    info.add_argument("--list-devices", action="store_true", help="list sound devices and exit")
    return parser


def preset_listing() -> str:
    names = available_presets()
    if not names:
        return f"no presets in {presets_dir()} (set PROTOPHONE_PRESETS to another folder)"
    lines = []
    for name in names:
        try:
            preset = load_preset(name)
            classes = read_metadata(preset.model).class_names
            if preset.target is not None and preset.target not in classes:
                raise PresetError(f"its target {preset.target!r} is not one of its model's classes")
            description = preset.description or "(no description)"
        except ProtophoneError as error:
            description = f"(unusable: {error})"
        lines.append(f"{name:<16} {description}")
    return "\n".join(lines)


def device_listing() -> str:
    """One line per device, the defaults marked; no device at all is an error (exit 2) with the way out."""
    audio = audio_module()
    devices = audio.list_devices()
    if not devices:
        raise AudioDeviceError(f"no sound devices found (is a sound card connected or JACK running?); {NO_DEVICE_HINT}")
    default_in, default_out = audio.default_device_indices()
    marks = {default_in: "default input", default_out: "default output"}
    if default_in == default_out:
        marks = {default_in: "default input and output"}
    return "\n".join(f"{device}{f'  <- {marks[device.index]}' if device.index in marks else ''}" for device in devices)


def load_processor(args: argparse.Namespace) -> Processor:
    """The preset's processor with the command line's settings applied (bad values: one-line errors)."""
    if args.device == "cuda":
        import torch  # only here: on the CPU a stream runs without torch (engine.modelfile.load_streaming_model)

        if not torch.cuda.is_available():
            raise UsageError("CUDA is not available on this machine; use --device cpu")
    return Processor.from_preset(args.preset, device=args.device, **{name: getattr(args, name) for name in SETTINGS})


def check_heard(args: argparse.Namespace, proc: Processor) -> None:
    """A flag that changes nothing in the run's mode is refused, not silently ignored."""
    if proc.mode != "identify":
        return
    idle = [setting.flag for name, setting in SETTINGS.items()
            if setting.transfer_only and getattr(args, name) is not None]
    if idle:
        raise UsageError(f"{', '.join(idle)} change{'s' if len(idle) == 1 else ''} nothing in identify mode (the input "
                         "passes through unchanged): add --mode transfer, or leave "
                         f"{'it' if len(idle) == 1 else 'them'} out")


def input_file(name: str) -> Path:
    return DEMO_FILE if name == "demo" else Path(name)


def folder_jobs(folder: Path, output: Path | None) -> list[tuple[Path, Path | None]]:
    """Every sound file under ``folder`` (sorted), each with its output at the same relative path under
    ``output``; the outputs are checked before any work, and never land in the input folder."""
    sources = sorted(path for path in folder.rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file()
                     and not path.name.startswith("."))
    if not sources:
        raise UsageError(f"no sound file ({', '.join(AUDIO_EXTENSIONS)}) in the folder {folder}")
    if output is None:
        return [(source, None) for source in sources]
    if output.resolve() == folder.resolve() or folder.resolve() in output.resolve().parents:
        raise UsageError(f"--output {output} lies in the input folder {folder}; write the outputs elsewhere")
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file; with a folder input give a folder")
    jobs = [(source, output / source.relative_to(folder)) for source in sources]
    for source, target in jobs:
        check_output(target, [source])
    return jobs


def check_options(args: argparse.Namespace) -> None:
    if args.input is None and (args.realtime or args.play):
        raise UsageError("--realtime and --play apply to file mode; add --input FILE (or --input demo)")
    if args.input is not None and args.duration is not None:
        raise UsageError("--duration applies to live runs; a file runs to its end")
    if args.latency == "low" and args.input is not None and not args.play:
        raise UsageError("--latency low applies to a device (live runs and --play); a file alone has no device")
    if args.input is not None and args.input_channel != (1,):
        raise UsageError("--input-channel chooses a live input's channels; a file is heard whole (mixed to mono)")
    if args.input is not None and args.client_name is not None and not args.play:
        raise UsageError("--client-name names the JACK client of a device (live runs and --play); a file alone "
                         "has none")
    if args.input is not None and args.midi is not None:
        raise UsageError("--midi controls live runs; a file runs with the settings it starts with")
    midi_flags = (args.midi_api, args.midi_mix_cc, args.midi_transpose_cc)
    if args.midi is None and any(flag is not None for flag in midi_flags):
        raise UsageError("--midi-api and --midi-*-cc set up a MIDI input: add --midi PORT (or --midi virtual)")
    if args.midi is not None and midi_map(args).mix_cc == midi_map(args).transpose_cc:
        raise UsageError(f"--midi-mix-cc and --midi-transpose-cc are both {midi_map(args).mix_cc}: give two "
                         "controllers")
    if args.worker_delay is not None and args.processing == "callback":
        raise UsageError("--worker-delay applies to worker processing; drop it or use --processing worker/auto")


def checked_jobs(args: argparse.Namespace, source: Path | None) -> list[tuple[Path, Path | None]]:
    """The files to process, each with its output (none for a live run), every output path checked before
    the model loads: a bad path costs no work."""
    inputs = [] if source is None else [source]
    if args.save_preset is not None:
        check_output(args.save_preset, inputs)
        if args.save_preset.suffix not in (".yaml", ".yml"):
            raise UsageError(f"--save-preset {args.save_preset}: a preset file ends in .yaml")
    if source is not None and source.is_dir():
        if args.play:
            raise UsageError("--play plays one file; give a file, not a folder")
        return folder_jobs(source, args.output)
    if args.output is not None:
        check_output(args.output, inputs)
    return [] if source is None else [(source, args.output)]


def run(args: argparse.Namespace) -> dict:
    """Build the engine and run it in file, folder or live mode; the display goes to stderr under --json."""
    check_options(args)
    source = input_file(args.input) if args.input is not None else None
    jobs = checked_jobs(args, source)
    proc = load_processor(args)
    check_heard(args, proc)
    block_size = args.block_size or proc.analysis.hop
    stream = sys.stderr if args.json else sys.stdout
    with Display(stream) as display:
        if source is None:
            settings = LiveSettings(args.input_device, args.output_device, args.sample_rate, block_size,
                                    args.duration, args.output, args.processing, args.worker_delay,
                                    args.latency == "low", args.input_channel, args.client_name)
            controls = live_controls(args, proc)
            try:
                summary = with_readout(proc, run_live(proc, settings, display, controls))
            finally:
                controls.close()
        else:
            runs = []
            for index, (path, output) in enumerate(jobs, start=1):
                if source.is_dir():
                    print(f"[{index}/{len(jobs)}] {path}", file=stream, flush=True)
                timeline = None if output is None or args.play else output.with_suffix(".png")
                settings = FileSettings(path, output, args.sample_rate, block_size, args.realtime, args.play,
                                        args.input_device, args.output_device, args.processing, args.worker_delay,
                                        args.latency == "low", timeline, args.client_name)
                runs.append(with_readout(proc, run_file(proc, settings, display)))
                if source.is_dir() and output is not None:
                    write_text(output.with_suffix(".json"), json.dumps(runs[-1], indent=1) + "\n")
            summary = runs[0] if not source.is_dir() else {
                "source": "folder", "input": str(source), "output": None if args.output is None else str(args.output),
                "files": runs}
    if args.save_preset is not None:
        save_preset(proc.preset, args.save_preset)
    return {"preset": proc.preset.name, "mode": proc.mode, "target": proc.target, "mix": proc.mix,
            "transpose": proc.transpose, "register": proc.preset.register, "carrier": proc.preset.carrier, **summary}


def midi_map(args: argparse.Namespace) -> MidiMap:
    """The controllers the flags name, the defaults for those they do not."""
    defaults = MidiMap()
    return MidiMap(defaults.mix_cc if args.midi_mix_cc is None else args.midi_mix_cc,
                   defaults.transpose_cc if args.midi_transpose_cc is None else args.midi_transpose_cc)


def live_controls(args: argparse.Namespace, proc: Processor) -> LiveControls:
    """Keys when stdin is a terminal, the MIDI input asked for; a save goes to --save-preset if given."""
    controls = LiveControls(proc, TerminalKeys.if_terminal(), args.save_preset)
    if args.midi is not None:
        try:
            controls.midi = MidiInput(controls, args.midi, args.midi_api or "alsa", midi_map(args),
                                      f"{args.client_name or DEFAULT_CLIENT_NAME}-midi")
        except MidiError:
            controls.close()
            raise
    return controls


def with_readout(proc: Processor, summary: dict) -> dict:
    """A run's summary with what the engine heard at its end (the readout's label and probabilities)."""
    snapshot = proc.identification
    return {"label": snapshot.label, "probabilities": snapshot.probabilities, "active_frames": snapshot.frames_seen,
            **summary}


def overload_text(summary: dict) -> str:
    """Deadline misses in the callback, or the worker's dry (overload) blocks and its delay."""
    thread = summary.get("audio_thread", {"mode": "callback"})
    if thread["mode"] == "worker":
        return (f"engine on the worker thread ({thread['worker_delay_blocks']} block(s) behind): "
                f"dry blocks {thread['dry_blocks']}")
    return f"deadline misses {summary['deadline_misses']}"


def human_summary(summary: dict) -> str:
    """The run in words: one line, or for a folder one line per file and a total."""
    if summary["source"] != "folder":
        return run_line(summary)
    files = summary["files"]
    seconds = sum(run["duration_s"] for run in files)
    return "\n".join([*(f"{run['input']}: {run_line(run)}" for run in files),
                      f"folder {summary['input']}: {len(files)} files, {seconds:.1f} s of sound"
                      + (f", outputs, .json reports and .png timelines in {summary['output']}"
                         if summary["output"] else "")])


def run_line(summary: dict) -> str:
    processing = summary["processing"]
    return (f"{summary['source']}: {summary['duration_s']:.1f} s at {summary['sample_rate']} Hz, block "
            f"{summary['block_size']}; heard {summary['clip_label'] or 'nothing'} over the whole {summary['source']} "
            f"(readout at the end: {summary['label'] or 'nothing confident'}); "
            f"latency {latency_text(summary['latency'])}; "
            + (f"took {summary['wall_s']:.1f} s, {1 / max(summary['realtime_factor'], 1e-9):.1f}x real time"
               if summary.get("offline") else f"xruns {summary['xruns']}, " + overload_text(summary)
               + f"; DSP load p50 {processing['load_p50']:.2f}, max {processing['load_max']:.2f}")
            + (f"; output {summary['output']}" if summary["output"] else "")
            + (f" ({summary['clipped_samples']} samples clipped at full scale: lower --mix or the preset's "
               "gain_db)" if summary.get("clipped_samples") else "")
            + (" (interrupted)" if summary["interrupted"] else ""))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.list_presets or args.list_devices:
            print(preset_listing() if args.list_presets else device_listing())
            return 0
        summary = run(args)
    except ProtophoneError as error:
        print(f"protophone: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C before audio started (loading the model): nothing to finish
        print("protophone: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(json.dumps(summary, indent=1) if args.json else human_summary(summary))
    if summary.get("recording_error"):
        print(f"protophone: recording stopped: {summary['recording_error']}; what was recorded until then is in "
              f"{summary['output']} (free some space or record to another disk)", file=sys.stderr)
        return EXIT_ERROR
    return 0  # a run stopped with Ctrl-C (or SIGTERM, SIGHUP) is a normal end: the figures and the file are complete


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: object = None,
                 line: str | None = None) -> None:
    """A warning as one line a player can act on, not Python's file-and-line form."""
    print(f"protophone: warning: {message}", file=sys.stderr)


def interrupt(signal_number: int, frame: object) -> None:
    """SIGTERM and SIGHUP end a run as Ctrl-C does: the recording finished, the summary printed."""
    raise KeyboardInterrupt


def exit_process(status: int) -> None:
    """Exit with ``status``; hard (``os._exit``, after flushing) when a dead device left PortAudio unusable,
    because PortAudio's exit handler would then hang or abort the process after the error was reported."""
    audio = sys.modules.get("realtime.audio")
    if audio is not None and audio.portaudio_abandoned():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, interrupt)
    warnings.showwarning = show_warning
    exit_process(main())
