"""Rebuild every shipped model from scratch: render the sample libraries, train, export to ``presets/``.

    python -m training.rebuild              # about 15 minutes on 2 CPU cores
    python -m training.rebuild --data-only  # just render data/ (the accuracy benchmark needs it too)

Renders the 14 instruments from the three General MIDI libraries that Debian packages
(``fluid-soundfont-gm``, ``timgm6mb-soundfont``, ``csound-soundfont``) into ``data/`` (skipped where a
library is already rendered), then trains each shipped config in a fresh run folder.  Each config's
``export`` key names the model file in ``presets/`` that the presets point to.
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
LIBRARIES = ("FluidR3_GM", "TimGM6mb", "sf_GMbank")
#: In order: the low-latency model reuses the orchestra run's split file.
SHIPPED_CONFIGS = (Path("training/configs/orchestra.yaml"), Path("training/configs/orchestra-lowlatency.yaml"))


def render_libraries(data: Path) -> None:
    for library in LIBRARIES:
        if (data / library / "metadata.csv").is_file():
            print(f"{data / library}: already rendered")
            continue
        soundfont = SOUNDFONTS / f"{library}.sf2"
        if not soundfont.is_file():
            raise SystemExit(f"error: {soundfont} is missing; run ./install.sh (it installs the soundfont packages)")
        subprocess.run([sys.executable, "-m", "training.data", "render", "--soundfont", str(soundfont),
                        "--out", str(data / library)], check=True)


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
        render_libraries(args.data)
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
