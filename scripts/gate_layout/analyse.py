"""Per case: spread of run means vs of load means vs within-load standard error, from runs.py output."""
import json, numpy as np, sys
res = json.load(open(sys.argv[1]))
from collections import defaultdict
by = defaultdict(list)
for r in res: by[r["case"]].append(r)
for case, rs in by.items():
    L = rs[0]["loads"]
    runmeans, loadsd, within_se = [], [], []
    for r in rs:
        logs = np.array(r["logs"]); n = len(logs)
        segs = [logs[n*k//L//2*2: n*(k+1)//L//2*2] for k in range(L)]  # approx: pairs split
        pairs = logs.reshape(-1,2).mean(1); P=len(pairs)
        segs = [pairs[P*k//L:P*(k+1)//L] for k in range(L)]
        lm = np.array([s.mean() for s in segs])
        runmeans.append(pairs.mean()); loadsd.append(lm.std(ddof=1))
        within_se.append(np.mean([s.std(ddof=1)/np.sqrt(len(s)) for s in segs]))
    print(f"{case:40s} pairs/run={P} sd(run means)={np.std(runmeans,ddof=1):.4f} mean={np.mean(runmeans):+.4f} "
          f"sd(load means) within run={np.mean(loadsd):.4f} within-load se={np.mean(within_se):.4f} "
          f"max|run mean|={np.max(np.abs(runmeans)):.4f}")
