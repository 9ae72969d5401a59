import json, glob, statistics, re, sys, os
raw = sys.argv[1] if len(sys.argv) > 1 else "/tmp/relprof/raw"
rows = {}
for f in sorted(glob.glob(f"{raw}/*.json")):
    m = re.match(r"(.+)-(metadata|upload)-r(\d+)\.json", os.path.basename(f))
    v, sc, r = m.groups()
    j = json.load(open(f))
    rows.setdefault((v, sc), []).append((int(r), j["ops_per_s"], j["mib_per_s"], j["latency_ms"]["p50"], j["latency_ms"]["p99"], j["errors"]["total"]))
print(f"{'variant':<14}{'scenario':<10}{'runs':>5}{'op/s med':>10}{'MiB/s med':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}   per-run op/s")
for (v, sc), rs in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    med = lambda i: statistics.median(x[i] for x in rs)
    print(f"{v:<14}{sc:<10}{len(rs):>5}{med(1):>10.1f}{med(2):>10.1f}{med(3):>9.2f}{med(4):>9.2f}{sum(x[5] for x in rs):>7}   {[x[1] for x in sorted(rs)]}")
