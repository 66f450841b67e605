# The user-facing --device cuda paths beside --device cpu on the same machine: evaluation of a tiny trained model
# and the violin preset on the demo clip through realtime.live's file mode; the outputs compared.
set -o pipefail
for d in cpu cuda; do
  python3 -m training.evaluate --preset .tinyrun/run/model.pt --data .tinydata --split .tinyrun/run/split.csv \
    --cache /tmp/cache-$d --device $d --json > $OUT/evaluate-$d.json 2> $OUT/evaluate-$d.err; echo "evaluate $d rc $?"
  timeout 150 python3 -m realtime.live --preset violin --input demo --output /tmp/demo-violin-$d.wav --device $d \
    > $OUT/live-$d.log 2>&1; echo "live $d rc $?"; tail -n 4 $OUT/live-$d.log
done
python3 - <<'PY' | tee $OUT/compare.txt
import json, os
import numpy as np, soundfile as sf
out = os.environ["OUT"]
a, ra = sf.read("/tmp/demo-violin-cpu.wav", dtype="float64"); b, rb = sf.read("/tmp/demo-violin-cuda.wav", dtype="float64")
print("rates", ra, rb, "samples", len(a), len(b), "peak", float(np.abs(a).max()))
n = min(len(a), len(b)); d = a[:n] - b[:n]
print("largest difference", float(np.abs(d).max()), "rms difference / rms", float(np.sqrt((d**2).mean() / (a[:n]**2).mean())))
for name in ("cpu", "cuda"):
    r = json.load(open(f"{out}/evaluate-{name}.json"))
    print(name, "OA", r["OA"], "AA", r["AA"], "live 1 s", r["streaming"]["after_1s"])
PY
