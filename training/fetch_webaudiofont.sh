#!/usr/bin/env bash
# Fetch the 14 classes' instruments of the WebAudioFont collection (github.com/surikov/webaudiofontdata, MIT;
# each SoundFont under its own licence: GeneralUser GS by S. Christian Collins, Aspirin, JCLive, SBLive,
# SoundBlasterOld, Chaos) into data/sources/webaudiofontdata/sound, about 11 MB, for
# `python -m training.data render --webaudiofont FONT --out data/NAME` (training/webaudiofont.py).
# `python -m training.rebuild` runs it before rendering GeneralUserGS, Aspirin and JCLive (the shipped orchestra
# models train on them); it downloads once and skips what is there. Nothing in Protophone fetches data while it
# runs: the shipped presets are in presets/.  A machine without network access points WEBAUDIOFONT_REPO at a
# local clone of that repository (any URL or path git clones from).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=data/sources/webaudiofontdata
REPO=${WEBAUDIOFONT_REPO:-https://github.com/surikov/webaudiofontdata}
if [ -d "$OUT/sound" ]; then echo "$OUT: already fetched"; exit 0; fi
PREFIXES=$(python -c 'from training.instruments import INSTRUMENTS; from training.webaudiofont import file_prefix
print(" ".join(file_prefix(inst.program) for inst in INSTRUMENTS))')  # the 14 classes' files, as the player reads
command -v git >/dev/null || { echo "error: git is needed (apt-get install git)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --depth 1 --filter=blob:none --no-checkout "$REPO" "$work/repo"
patterns=()
for prefix in $PREFIXES; do patterns+=("sound/${prefix}_*.js"); done
git -C "$work/repo" sparse-checkout set --no-cone "${patterns[@]}"
git -C "$work/repo" checkout --quiet
mkdir -p "$OUT" && mv "$work/repo/sound" "$OUT/sound"   # whole or not at all
echo "fetched $(find "$OUT/sound" -name '*.js' | wc -l) instruments into $OUT/sound"
