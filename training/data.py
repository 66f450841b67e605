"""Command line for rendering training data from General MIDI soundfonts (docs/design.md section 3).

    python -m training.data render --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --out data/FluidR3_GM
    python -m training.data render --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2 --out data/TimGM6mb
    python -m training.data demo --out presets/demo.flac     # regenerates presets/demo.flac + demo.notes.csv
    python -m training.data speech --out data/speech         # the synthetic stand-in speech corpus (16 kHz)

Errors the user can fix (missing or corrupt soundfont, unwritable output folder, unknown class) end in
one line on stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from engine.atomic import replacing
from training import speech as speech_module
from training.csound import CsoundError, CsoundLibrary
from training.dataset import DatasetReport, OutputError, check_writable, render_dataset, write_notes_csv
from training.instruments import BY_NAME, INSTRUMENTS, VELOCITIES, UnknownClassError, select
from training.performance import VARIANTS, legato_phrase
from training.render import Library, Renderer, SoundFontError
from training.sampler import SampleLibrary, SamplerError
from training.silence import trim_trailing_silence
from training.sonivox import SonivoxError, SonivoxLibrary
from training.stk import StkError, StkLibrary
from training.timidity import FREEPATS, PatchError, PatchLibrary
from training.webaudiofont import DEFAULT_SOUND_DIR, FONTS, INDEPENDENT_FONTS, WebAudioFont, WebAudioFontError

#: Physically modelled libraries: the renderer and the library name it is written under by default.
PHYSICAL = {"csound": (CsoundLibrary, "csound"), "stk": (StkLibrary, "stk")}
#: Synthesisers that carry their own sample library, by the library name they are written under by default.
WAVETABLES = {"sonivox": SonivoxLibrary}

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"

# The demo: a cello phrase in D minor (D3 F3 A3 G3 F3 E3 C#3 D3) at 84 bpm, about 7 s with the release.
DEMO_INSTRUMENT = "cello"
DEMO_MELODY = (50, 53, 57, 55, 53, 52, 49, 50)
DEMO_BEATS = (1.0, 1.0, 1.5, 0.5, 1.0, 1.0, 1.0, 2.0)
DEMO_BPM = 84.0
DEMO_VELOCITY = 90

_ABOUT = (
    ("Render single notes and legato phrases of the 14 TinySOL instrument classes from a General MIDI "
     "SoundFont with FluidSynth, as training and evaluation data for Protophone."),
    (f"Each class is played over its real (sounding) range at velocities {', '.join(map(str, VELOCITIES))}, "
     f"with reverb and chorus off, in these variants: {', '.join(v.name for v in VARIANTS)}. \"plain\" notes are "
     "rendered at every velocity, each other variant once per key at a seeded velocity. Keys the SoundFont "
     "has no samples for render as silence; they are detected, dropped and counted (dropped.csv), never "
     "written as data. Legato phrases (6-12 notes, seeded random walks) come with a notes file "
     "(onset_s, offset_s, midi) for pitch benchmarks."),
    f"Classes: {', '.join(inst.name for inst in INSTRUMENTS)}.",
)
DESCRIPTION = "\n\n".join(textwrap.fill(paragraph, 100) for paragraph in _ABOUT)

EPILOG = """\
output layout:
  OUT/<class>/<class>-<midi>-v<velocity>-<variant>.wav   mono PCM 16-bit single notes
  OUT/metadata.csv          path, class, midi, velocity, variant, library, duration_s, program, peak_dbfs, rms
  OUT/phrases/<class>/*.wav with *.notes.csv beside each; OUT/phrases/metadata.csv
  OUT/dropped.csv           silent renders that were dropped; OUT/summary.json  settings and counts

examples:
  python -m training.data render --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --out data/FluidR3_GM
  python -m training.data render --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2 --out /tmp/tiny \\
      --classes violin,flute --max-notes-per-class 4 --phrases-per-class 1
  python -m training.data render --physical csound --out data/csound   # physical models (needs csound)
  python -m training.data render --physical stk --out data/stk         # (needs stk)
  python -m training.data render --patches /etc/timidity/freepats.cfg --out data/freepats  # (timidity, freepats)
  python -m training.data render --samples data/sources/tonejs --out data/tonejs  # (training/fetch_tonejs.sh)
  python -m training.data render --webaudiofont GeneralUserGS --out data/GeneralUserGS  # (fetch_webaudiofont.sh)
  python -m training.data demo --out presets/demo.flac
"""


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.data", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{render,demo}")

    render = commands.add_parser("render", help="render a dataset folder from a SoundFont",
                                 description=DESCRIPTION, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    source = render.add_mutually_exclusive_group(required=True)
    source.add_argument("--soundfont", type=Path,
                        help=f"SoundFont 2 file, e.g. {DEFAULT_SOUNDFONT} or /usr/share/sounds/sf2/TimGM6mb.sf2")
    source.add_argument("--physical", choices=tuple(PHYSICAL),
                        help="physical models instead of samples: csound (Csound's waveguides: bowed strings, "
                        "clarinet) or stk (the Synthesis ToolKit: bowed strings, clarinet, flute, alto sax)")
    source.add_argument("--patches", type=Path, metavar="CFG",
                        help=f"a GUS patch set played by TiMidity++, by its configuration: {FREEPATS} "
                        "(Freepats: 12 of the 14 classes, no viola or contrabass)")
    source.add_argument("--wavetable", choices=tuple(WAVETABLES),
                        help="a synthesiser's own built-in samples: sonivox (the Sonivox EAS General MIDI "
                        "wavetable, Android's MIDI synthesiser; all 14 classes, nothing above 11 kHz)")
    source.add_argument("--samples", type=Path, metavar="DIR",
                        help="recorded notes played like a sampler, DIR/<class>/<note>.<ext> (C4 = middle C): "
                        "data/sources/tonejs, which training/fetch_tonejs.sh fetches (VSCO 2 and others: 11 of "
                        "the 14 classes)")
    source.add_argument("--webaudiofont", choices=tuple(FONTS), metavar="FONT",
                        help="a SoundFont of the WebAudioFont collection, played as its own player plays it: "
                        f"{', '.join(FONTS)} (training/fetch_webaudiofont.sh fetches them; all 14 classes; "
                        f"{', '.join(INDEPENDENT_FONTS)} share no recording with the other libraries)")
    render.add_argument("--webaudiofont-dir", type=Path, default=DEFAULT_SOUND_DIR, metavar="DIR",
                        help=f"where the WebAudioFont instruments are (default: {DEFAULT_SOUND_DIR})")
    render.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    render.add_argument("--library", help="library name written in the metadata (default: the soundfont's "
                        "file stem, e.g. FluidR3_GM, the --physical name, or the --patches file stem)")
    render.add_argument("--seed", type=int, default=0, help="seed for variants' velocities, vibrato and "
                        "phrases; the same seed gives identical files (default 0)")
    render.add_argument("--classes", help="comma-separated subset of classes (default: all 14)")
    render.add_argument("--max-notes-per-class", type=_positive, metavar="N",
                        help="render at most N single notes per class, spread evenly over range and "
                        "variants (for tiny test datasets; default: all)")
    render.add_argument("--phrases-per-class", type=_positive, default=8, metavar="N",
                        help="legato phrases per class (default 8)")
    render.add_argument("--sample-rate", type=int, default=44100, help="output sample rate in Hz (default 44100)")
    render.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: all cores)")

    speech = commands.add_parser("speech", help="render the synthetic stand-in speech corpus (28 voices, 16 kHz)",
                                 description=speech_module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    speech.add_argument("--out", type=Path, default=Path("data/speech"), help="output folder (default: data/speech)")
    speech.add_argument("--chapters", type=int, default=speech_module.CHAPTERS, help="chapters per speaker")
    speech.add_argument("--utterances", type=int, default=speech_module.UTTERANCES_PER_CHAPTER,
                        help="sentences per chapter")
    demo = commands.add_parser("demo", help="render the demo phrase shipped as presets/demo.flac",
                               description="Render a short cello legato phrase from FluidR3_GM (mono FLAC) "
                               "and its notes file (<out stem>.notes.csv) beside it.")
    demo.add_argument("--out", type=Path, default=Path("presets/demo.flac"), help="output .flac path")
    demo.add_argument("--soundfont", type=Path, default=Path(DEFAULT_SOUNDFONT), help="SoundFont 2 file")
    return parser


def _bar(results: Iterable, total: int) -> Iterable:
    return tqdm(results, total=total, unit="file", desc="rendering", dynamic_ncols=True)


def run_render(args: argparse.Namespace) -> DatasetReport:
    instruments = select(args.classes.split(",") if args.classes else None)
    library: Renderer
    if args.soundfont:
        library, name = Library(args.soundfont, args.sample_rate), args.library or args.soundfont.stem
    elif args.physical:
        renderer, default_name = PHYSICAL[args.physical]
        library, name = renderer(args.sample_rate), args.library or default_name
    elif args.patches:
        library, name = PatchLibrary(args.patches, args.sample_rate), args.library or args.patches.stem
    elif args.wavetable:
        library, name = WAVETABLES[args.wavetable](args.sample_rate), args.library or args.wavetable
    elif args.webaudiofont:
        library = WebAudioFont(FONTS[args.webaudiofont], args.webaudiofont_dir, args.sample_rate)
        name = args.library or args.webaudiofont
    else:
        library, name = SampleLibrary(args.samples, args.sample_rate), args.library or args.samples.name
    if not (args.soundfont or args.classes):  # a library of some of the classes: by default, all it has
        instruments = [inst for inst in instruments if library.has_program(inst.program)]
    missing = [inst.name for inst in instruments if not library.has_program(inst.program)]
    if missing:
        source = (args.soundfont or args.physical or args.patches or args.wavetable or args.webaudiofont
                  or args.samples)
        raise SoundFontError(f"{source} has no instrument for: {', '.join(missing)} (leave them out with --classes)")
    report = render_dataset(library, name, args.out, instruments, seed=args.seed,
                            max_notes=args.max_notes_per_class, phrases_per_class=args.phrases_per_class,
                            workers=args.jobs, progress=_bar)
    print_report(report, args.out)
    return report


def print_report(report: DatasetReport, out_dir: Path) -> None:
    header = f"{'class':<12}{'notes':>7}{'dropped':>9}{'phrases':>9}{'dur (s)':>10}{'mean RMS':>10}"
    lines = [f"library {report.library} -> {out_dir}", header, "-" * len(header)]
    total_notes = total_dropped = total_phrases = 0
    total_duration = 0.0
    for name, c in report.classes.items():
        dropped = f"{c.dropped}" + (f"+{c.dropped_phrases}ph" if c.dropped_phrases else "")
        lines.append(f"{name:<12}{c.notes:>7}{dropped:>9}{c.phrases:>9}{c.duration_s:>10.1f}{c.mean_rms:>10.4f}")
        total_notes += c.notes
        total_dropped += c.dropped
        total_phrases += c.phrases
        total_duration += c.duration_s
    lines += ["-" * len(header),
              f"{'total':<12}{total_notes:>7}{total_dropped:>9}{total_phrases:>9}{total_duration:>10.1f}",
              f"audio {total_duration / 60:.1f} min, wall time {report.wall_s:.1f} s"]
    print("\n".join(lines))


def run_demo(args: argparse.Namespace) -> None:
    out: Path = args.out
    check_writable(out.parent)
    library = Library(args.soundfont, 44100)
    beat_s = 60.0 / DEMO_BPM
    performance, notes = legato_phrase(DEMO_MELODY, [b * beat_s for b in DEMO_BEATS], DEMO_VELOCITY)
    audio = trim_trailing_silence(library.render(BY_NAME[DEMO_INSTRUMENT].program, performance), 44100)
    with replacing(out) as temporary:
        sf.write(temporary, audio, 44100, format="FLAC", subtype="PCM_16")
    notes_path = out.with_suffix(".notes.csv")
    write_notes_csv(notes_path, notes)
    print(f"wrote {out} ({len(audio) / 44100:.2f} s, {out.stat().st_size / 1024:.0f} KiB) and {notes_path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "render":
            run_render(args)
        elif args.command == "speech":
            count = speech_module.render_corpus(args.out, chapters=args.chapters, per_chapter=args.utterances)
            print(f"wrote {count} utterances of {len(speech_module.speakers())} synthetic speakers to {args.out}")
        else:
            run_demo(args)
    except (SoundFontError, CsoundError, StkError, PatchError, SonivoxError, SamplerError, WebAudioFontError,
            OutputError, UnknownClassError, speech_module.SpeechError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
