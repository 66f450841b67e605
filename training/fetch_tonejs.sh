#!/usr/bin/env bash
# Fetch the recorded instruments of the tonejs-instruments packages (npm; CC-BY 3.0: Versilian Studios'
# VSCO 2 and its clarinet, a Freesound cello, Karoryfer's alto saxophone; 11 of the 14 classes, 26 MB) into
# data/sources/tonejs/<class>/<note>.mp3, for `python -m training.data render --samples data/sources/tonejs
# --out data/tonejs` (the "tonejs" rows of `python -m benchmarks.accuracy --ablation`). A download you run
# yourself, once: nothing in Protophone fetches data while it runs, and no shipped preset needs these.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=data/sources/tonejs
PACKAGES="bassoon:bassoon@1.1.2 cello:cello@1.1.1 clarinet:clarinet@1.1.2 contrabass:contrabass@1.1.2
          flute:flute@1.1.2 horn:french-horn@1.1.2 alto_sax:saxophone@1.1.2 trombone:trombone@1.1.2
          trumpet:trumpet@1.1.2 tuba:tuba@1.1.2 violin:violin@1.1.1"
if [ -d "$OUT" ]; then echo "$OUT: already fetched"; exit 0; fi
command -v npm >/dev/null || { echo "error: npm is needed (apt-get install npm)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for entry in $PACKAGES; do
    class=${entry%%:*}; package="tonejs-instrument-${entry#*:}"; package="${package/@/-mp3@}"
    (cd "$work" && npm pack --silent "$package" >/dev/null)
    mkdir -p "$work/tonejs/$class"
    tar xzf "$work"/tonejs-instrument-*.tgz -C "$work/tonejs/$class" --strip-components=1 --wildcards 'package/*.mp3'
    rm "$work"/tonejs-instrument-*.tgz
done
mkdir -p "$(dirname "$OUT")" && mv "$work/tonejs" "$OUT"   # whole or not at all
echo "fetched $(find "$OUT" -name '*.mp3' | wc -l) recordings into $OUT"
