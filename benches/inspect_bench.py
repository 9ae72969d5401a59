#!/usr/bin/env python3
"""What format inspection costs an upload: MiB/s and server CPU seconds per GiB
of `PUT /v2/images/{id}/file`, inspected and not, against one running server.

usage: inspect_bench.py --url URL --pid PID [--size-mib 1024] [--repeat 5]

Glance inspects only `bare` containers, and so do we: the same server, the same
data, the same code path but for the inspector, is an upload of a `bare` image
(inspected) against one of an `ova` image (passed through). The two kinds
alternate, run after run, so that the machine's noise falls on both alike.
Prints one JSON object with every run and the medians of each kind.
"""

import argparse
import http.client
import json
import statistics
import sys
import time
import urllib.parse

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from import_bench import cpu_seconds, request  # noqa: E402

CHUNK = 1 << 20


def upload_once(url, size, pattern, container):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    status, data = request(
        conn, "POST", "/v2/images",
        json.dumps({"name": "inspect-bench", "disk_format": "raw",
                    "container_format": container}),
        {"Content-Type": "application/json"})
    assert status == 201, (status, data)
    image_id = json.loads(data)["id"]
    t0 = time.monotonic()
    conn.putrequest("PUT", f"/v2/images/{image_id}/file")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    left = size
    while left:
        n = min(CHUNK, left)
        conn.send(pattern[:n])
        left -= n
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 204, resp.status
    took = time.monotonic() - t0
    status, data = request(conn, "GET", f"/v2/images/{image_id}")
    image = json.loads(data)
    inspected = image["virtual_size"] is not None
    assert inspected == (container == "bare"), image
    request(conn, "DELETE", f"/v2/images/{image_id}")
    conn.close()
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    size = args.size_mib << 20
    pattern = bytes((i * 131 + 7) % 256 for i in range(CHUNK))
    runs = {"bare": [], "ova": []}
    for _ in range(args.repeat):
        for container in ("bare", "ova"):
            before = cpu_seconds(args.pid)
            took = upload_once(args.url, size, pattern, container)
            cpu = cpu_seconds(args.pid) - before
            run = {
                "container": container,
                "mib_per_s": round(args.size_mib / took, 1),
                "server_cpu_s_per_gib": round(cpu * 1024 / args.size_mib, 3),
            }
            runs[container].append(run)
            print(json.dumps(run), file=sys.stderr)

    def med(kind, key):
        return statistics.median(r[key] for r in runs[kind])

    print(json.dumps({
        "url": args.url,
        "size_mib": args.size_mib,
        "runs": runs["bare"] + runs["ova"],
        "inspected": {"median_mib_per_s": med("bare", "mib_per_s"),
                      "median_server_cpu_s_per_gib": med("bare", "server_cpu_s_per_gib")},
        "not_inspected": {"median_mib_per_s": med("ova", "mib_per_s"),
                          "median_server_cpu_s_per_gib": med("ova", "server_cpu_s_per_gib")},
    }, indent=1))


if __name__ == "__main__":
    main()
