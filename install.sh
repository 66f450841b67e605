#!/usr/bin/env bash
# Install Protophone and everything its tests use on a Debian-based machine (run as root or with sudo).
#   system: libsndfile (audio files), PortAudio + JACK (live audio and its tests),
#           FluidSynth + three General MIDI sample libraries (rendered training data; the tests use
#           the small TimGM6mb, python -m training.rebuild all three), Csound and the Synthesis ToolKit
#           (physically modelled instruments: python -m training.data render --physical csound|stk),
#           TiMidity++ and the Freepats patch set (a fourth sample library: --patches), Sonivox EAS
#           (a synthesiser with its own General MIDI wavetable: --wavetable sonivox),
#           Chromium and its WebDriver (the prototype gallery's browser test), espeak-ng and flite (the
#           synthetic speech corpus: python -m training.data speech)
#   Python: the CPU build of torch 2.13.0 first (so nothing pulls a CUDA build), then this package.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(libsndfile1 libportaudio2 jackd2 libjack-jackd2-0 fluidsynth libfluidsynth3
              fluid-soundfont-gm timgm6mb-soundfont csound-soundfont csound stk timidity freepats libsonivox3
              chromium chromium-driver espeak-ng flite)
missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python -m pip install --quiet --disable-pip-version-check torch==2.13.0
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
echo "Protophone installed."
