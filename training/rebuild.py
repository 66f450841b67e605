"""Rebuild every shipped model from scratch: render the sample libraries, train, export to ``presets/``.

    python -m training.rebuild              # seven libraries and the speech corpus, then the four shipped models
    python -m training.rebuild --data-only  # just render every library into data/ (the benchmarks need them)

Renders the libraries the shipped configs train on into ``data/`` (skipped where a library is already
rendered), then trains each shipped config in a fresh run folder, as many at once as there are CPU cores,
each pinned to a core of its own (one torch thread each: the runs never fight for a core; progress in
``runs/NAME/log.csv``, output in ``runs/NAME.log``); a config that reuses another's split file starts once
that one has finished.  Each config's ``export`` key names the model file in ``presets/`` that the presets
point to.  Every run uses the same numeric code paths (:data:`PORTABLE_KERNELS`), so that a rebuild on any
x86 CPU with AVX2 writes the shipped files' weights exactly.

``--data-only`` renders every library the project knows: the three General MIDI SoundFonts that Debian
packages (``fluid-soundfont-gm``, ``timgm6mb-soundfont``, ``csound-soundfont``), the Freepats patch set
(``freepats``, played by TiMidity++), the two physically modelled libraries (Csound, the Synthesis ToolKit),
the Sonivox EAS wavetable (``libsonivox3``, ``training.sonivox``), three SoundFonts of the WebAudioFont
collection (GeneralUserGS, Aspirin, JCLive: ``training.webaudiofont``; the one download, about 11 MB from GitHub
by ``training/fetch_webaudiofont.sh``, once) and the synthetic speech corpus (espeak-ng and flite voices,
``training.speech``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import yaml

from training.config import load_config
from training.webaudiofont import INDEPENDENT_FONTS

SOUNDFONTS = Path("/usr/share/sounds/sf2")
#: Every library, by its folder name under data/: how ``training.data render`` makes it.
LIBRARIES = {
    **{name: ["render", "--soundfont", str(SOUNDFONTS / f"{name}.sf2")]
       for name in ("FluidR3_GM", "TimGM6mb", "sf_GMbank")},
    "freepats": ["render", "--patches", "/etc/timidity/freepats.cfg"],
    "csound": ["render", "--physical", "csound"],
    "stk": ["render", "--physical", "stk"],
    "sonivox": ["render", "--wavetable", "sonivox"],
    **{name: ["render", "--webaudiofont", name] for name in INDEPENDENT_FONTS},
    "speech": ["speech"],  # the synthetic stand-in speech corpus (training.speech)
}
#: Libraries whose source files a script downloads first (once; it skips what is there), by that script.
DOWNLOADS = {name: Path("training/fetch_webaudiofont.sh") for name in INDEPENDENT_FONTS}
#: The file each kind of library writes last: its presence means the library is complete.
COMPLETE_MARKERS = ("metadata.csv", "SPEAKERS.csv")
#: The numeric code paths every rebuild trains with, whatever the CPU: torch's own kernels, MKL's and oneDNN's
#: each pick the widest vector instructions a CPU has, and AVX-512 rounds differently from AVX2, so the same
#: seeded config trained a different model on an AVX-512 machine (up to 3 points apart on a library's notes).
#: Held at AVX2, an AVX-512 machine trains exactly the shipped files' weights (trained on an AVX2 machine).
#: Each is a ceiling: a CPU without AVX2 (or not x86) keeps its own paths.
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
#: In the order they start: the two long orchestra runs (160 epochs) side by side, then the speakers model on
#: the core the first of them frees and the transfer model (the shortest) on the other, so the cores finish
#: together.  No shipped run reuses another's split file, so none waits for another.
SHIPPED_CONFIGS = (Path("training/configs/orchestra.yaml"), Path("training/configs/orchestra-lowlatency.yaml"),
                   Path("training/configs/speakers.yaml"), Path("training/configs/orchestra-transfer.yaml"))


class RebuildError(Exception):
    """A shipped model could not be trained; the message names each one and where its output is."""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def render_libraries(data: Path, libraries: list[str]) -> None:
    for library in libraries:
        if any((data / library / marker).is_file() for marker in COMPLETE_MARKERS):
            print(f"{data / library}: already rendered")
            continue
        if library in DOWNLOADS:
            subprocess.run(["bash", str(DOWNLOADS[library])], check=True)
        subprocess.run([sys.executable, "-m", "training.data", *LIBRARIES[library], "--out", str(data / library)],
                       check=True)


def trained_libraries(configs: tuple[Path, ...]) -> list[str]:
    """The libraries the configs' ``data.roots`` name, in the order of LIBRARIES."""
    roots = {Path(root).name for config in configs for root in yaml.safe_load(config.read_text())["data"]["roots"]}
    unknown = roots - set(LIBRARIES)
    if unknown:
        raise SystemExit(f"error: a shipped config trains on {sorted(unknown)}, which training.rebuild cannot render")
    return [name for name in LIBRARIES if name in roots]


def split_sources(configs: tuple[Path, ...]) -> dict[Path, Path | None]:
    """For each config, the other config among ``configs`` whose run writes the split file it reuses, if any."""
    loaded = {config: load_config(config) for config in configs}
    writers = {settings.output / "split.csv": config for config, settings in loaded.items()}
    sources = {config: writers.get(settings.data.split_file) if settings.data.split_file else None
               for config, settings in loaded.items()}
    return {config: None if source == config else source for config, source in sources.items()}


def log_file(config: Path) -> Path:
    """Where a rebuild's training of ``config`` writes its output: beside its run folder."""
    output = load_config(config).output
    return output.with_name(output.name + ".log")


def start_training(config: Path, core: int) -> subprocess.Popen[bytes]:
    """Start training ``config`` from scratch on CPU core ``core`` alone, with :data:`PORTABLE_KERNELS`.

    The child inherits the CPU set of the thread that starts it: this thread is pinned to ``core`` for the
    start and then given its own set back (no ``preexec_fn``, which is unsafe where threads run)."""
    output = load_config(config).output
    if output.exists():
        shutil.rmtree(output)
    log = log_file(config)
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"training {config} on CPU core {core} (progress: {output / 'log.csv'}; output: {log})", flush=True)
    own_cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        with log.open("wb") as sink:
            return subprocess.Popen([sys.executable, "-m", "training.train", "--config", str(config), "--no-progress"],
                                    stdout=sink, stderr=subprocess.STDOUT, env=os.environ | PORTABLE_KERNELS)
    finally:
        os.sched_setaffinity(0, own_cores)


class Run(NamedTuple):
    config: Path
    process: subprocess.Popen[bytes]
    started: float


def train_all(configs: tuple[Path, ...], cores: list[int]) -> None:
    """Train every config, one per core at a time, each started in the order given once a core is free and
    the run whose split it reuses has finished.  A failed run stops the runs that wait for it, not the
    others; raises :class:`RebuildError` naming every failure once the others have ended (or stops them all
    if the rebuild itself is interrupted)."""
    sources = split_sources(configs)
    pending = list(configs)
    finished: set[Path] = set()
    failed: set[Path] = set()  # the runs that failed and the configs left waiting on one of them
    failures: list[str] = []
    running: dict[int, Run] = {}
    try:
        while pending or running:
            while stranded := [config for config in pending if sources[config] in failed]:  # and theirs in turn
                for config in stranded:
                    pending.remove(config)
                    failed.add(config)
                    failures.append(f"{config} not trained: the run writing its split ({sources[config]}) failed")
            for core in [core for core in cores if core not in running]:
                ready = next((config for config in pending if sources[config] in (None, *finished)), None)
                if ready is None:
                    break
                pending.remove(ready)
                running[core] = Run(ready, start_training(ready, core), time.perf_counter())
            if pending and not running:
                raise RebuildError(f"the split files of {[str(config) for config in pending]} wait on one another; "
                                   "let one of them write its own")
            time.sleep(1.0)
            for core, run in list(running.items()):
                if run.process.poll() is None:
                    continue
                del running[core]
                if run.process.returncode:
                    failed.add(run.config)
                    killed = ", killed: out of memory? try --jobs 1" if run.process.returncode == -9 else ""
                    failures.append(f"{run.config} failed (exit status {run.process.returncode}{killed}; "
                                    f"see {log_file(run.config)})")
                    print(f"error: {failures[-1]}", file=sys.stderr, flush=True)
                else:
                    finished.add(run.config)
                    print(f"{run.config}: trained in {time.perf_counter() - run.started:.0f} s", flush=True)
    finally:
        for run in running.values():
            run.process.terminate()
            run.process.wait()
    if failures:
        raise RebuildError("; ".join(failures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.rebuild", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"), help="where rendered libraries go (default data/)")
    parser.add_argument("--data-only", action="store_true", help="render the libraries and stop")
    parser.add_argument("--jobs", type=positive_int, default=len(os.sched_getaffinity(0)), metavar="N",
                        help="train at most N models at once, each on a core of its own (default: every core this "
                             "process may use); fewer where memory is short (each run holds its features, ~2 GB)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        render_libraries(args.data, list(LIBRARIES) if args.data_only else trained_libraries(SHIPPED_CONFIGS))
        if not args.data_only:
            train_all(SHIPPED_CONFIGS, sorted(os.sched_getaffinity(0))[:args.jobs])
    except subprocess.CalledProcessError as error:
        print(f"error: step failed with exit status {error.returncode}: {' '.join(error.cmd)}", file=sys.stderr)
        return 2
    except RebuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"rebuilt in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
