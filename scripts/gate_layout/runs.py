"""Unchanged gate runs with a fresh worker pair each: LOADS RUNS OUT.json [DIAG_PY=interpreter wrapper, e.g. setarch -R]."""
from pathlib import Path
import json, random, sys, numpy as np
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]
from edgeopt.gate import ab, stats
from edgeopt.data import default_data_dir
from measure_gate import CASES
L = int(sys.argv[1]); runs = int(sys.argv[2]); out = sys.argv[3]
data = str(Path(default_data_dir()).resolve()); log = Path(".edgeopt-cache/gate/layout")
res = []
for r in range(runs):
    import os; py = os.environ.get("DIAG_PY", sys.executable); ws = [ab.Worker(ab.Side("base", python=py), log, 1, data), ab.Worker(ab.Side("head", python=py), log, 1, data)]
    for w in ws: w.ask(op="describe")
    rng = random.Random(r)
    timing = ab.Timing(loads=L)
    try:
        for c in CASES:
            t = ab.time_case(ws, c, timing, rng)
            b = stats.round_medians(t["samples_s"]["base"]); h = stats.round_medians(t["samples_s"]["head"])
            res.append({"run": r, "case": t["case"], "logs": np.log(h / b).tolist(), "loads": L})
    finally:
        for w in ws: w.close()
    print(r, file=sys.stderr)
json.dump(res, open(out, "w"))
