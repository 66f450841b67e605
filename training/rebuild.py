"""Rebuild every shipped model from scratch: render the sample libraries, train, export to ``presets/``.

    python -m training.rebuild              # four libraries and the speech corpus, then the three shipped models
    python -m training.rebuild --data-only  # just render every library into data/ (the benchmarks need them)

Renders the libraries the shipped configs train on into ``data/`` (skipped where a library is already
rendered), then trains each shipped config in a fresh run folder.  Each config's ``export`` key names
the model file in ``presets/`` that the presets point to.  ``--data-only`` renders every library the
project knows: the three General MIDI SoundFonts that Debian packages (``fluid-soundfont-gm``,
``timgm6mb-soundfont``, ``csound-soundfont``), the Freepats patch set (``freepats``, played by
TiMidity++), the two physically modelled libraries (Csound, the Synthesis ToolKit), the Sonivox EAS
wavetable (``libsonivox3``, ``training.sonivox``) and the synthetic speech corpus (espeak-ng and flite
voices, ``training.speech``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

SOUNDFONTS = Path("/usr/share/sounds/sf2")
#: Every library, by its folder name under data/: how ``training.data render`` makes it.
LIBRARIES = {
    **{name: ["render", "--soundfont", str(SOUNDFONTS / f"{name}.sf2")]
       for name in ("FluidR3_GM", "TimGM6mb", "sf_GMbank")},
    "freepats": ["render", "--patches", "/etc/timidity/freepats.cfg"],
    "csound": ["render", "--physical", "csound"],
    "stk": ["render", "--physical", "stk"],
    "sonivox": ["render", "--wavetable", "sonivox"],
    "speech": ["speech"],  # the synthetic stand-in speech corpus (training.speech)
}
#: The file each kind of library writes last: its presence means the library is complete.
COMPLETE_MARKERS = ("metadata.csv", "SPEAKERS.csv")
#: In order: the low-latency model reuses the orchestra run's split file.
SHIPPED_CONFIGS = (Path("training/configs/orchestra.yaml"), Path("training/configs/orchestra-lowlatency.yaml"),
                   Path("training/configs/speakers.yaml"))


def render_libraries(data: Path, libraries: list[str]) -> None:
    for library in libraries:
        if any((data / library / marker).is_file() for marker in COMPLETE_MARKERS):
            print(f"{data / library}: already rendered")
            continue
        subprocess.run([sys.executable, "-m", "training.data", *LIBRARIES[library], "--out", str(data / library)],
                       check=True)


def trained_libraries(configs: tuple[Path, ...]) -> list[str]:
    """The libraries the configs' ``data.roots`` name, in the order of LIBRARIES."""
    roots = {Path(root).name for config in configs for root in yaml.safe_load(config.read_text())["data"]["roots"]}
    unknown = roots - set(LIBRARIES)
    if unknown:
        raise SystemExit(f"error: a shipped config trains on {sorted(unknown)}, which training.rebuild cannot render")
    return [name for name in LIBRARIES if name in roots]


def train_fresh(config: Path) -> None:
    output = Path(yaml.safe_load(config.read_text())["output"])
    if output.exists():
        shutil.rmtree(output)
    subprocess.run([sys.executable, "-m", "training.train", "--config", str(config)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.rebuild", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"), help="where rendered libraries go (default data/)")
    parser.add_argument("--data-only", action="store_true", help="render the libraries and stop")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        render_libraries(args.data, list(LIBRARIES) if args.data_only else trained_libraries(SHIPPED_CONFIGS))
        if not args.data_only:
            for config in SHIPPED_CONFIGS:
                train_fresh(config)
    except subprocess.CalledProcessError as error:
        print(f"error: step failed with exit status {error.returncode}: {' '.join(error.cmd)}", file=sys.stderr)
        return 2
    print(f"rebuilt in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
