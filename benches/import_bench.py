#!/usr/bin/env python3
"""Times interoperable import (glance-direct: stage, then import until active)
against any Glance-compatible endpoint, and the server's CPU seconds for it.

usage: import_bench.py --url URL [--pid PID] [--size-mib 256] [--repeat 3]

Prints one JSON object: per run the seconds to stage, the seconds from the
import call to `active`, and (with --pid) the server's CPU seconds for the
whole run, read from /proc. Compare two servers in the same run, back to back:
the machines are shared and noisy, so the ratios are what count.
"""

import argparse
import hashlib
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse

CHUNK = 1 << 20


def cpu_seconds(pid):
    """utime + stime of the process and its children so far (uWSGI forks)."""
    if not pid:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    # uWSGI workers are children of the master: count them too.
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    pids.append(int(entry))
            except OSError:
                pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            pass
    return total


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data


def run_once(url, size, pattern):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    # Identity as keystonemiddleware passes it: a Glance run without Keystone
    # needs a project to own the import task (servers in noauth ignore it).
    auth = {
        "X-Auth-Token": "x",
        "X-Identity-Status": "Confirmed",
        "X-Project-Id": "admin",
        "X-User-Id": "admin",
        "X-Roles": "admin",
    }
    status, data = request(
        conn, "POST", "/v2/images",
        json.dumps({"name": "import-bench", "disk_format": "raw", "container_format": "bare"}),
        {**auth, "Content-Type": "application/json"})
    assert status == 201, (status, data)
    image_id = json.loads(data)["id"]

    def body():
        left = size
        while left:
            n = min(CHUNK, left)
            yield pattern[:n]
            left -= n

    t0 = time.monotonic()
    conn.putrequest("PUT", f"/v2/images/{image_id}/stage")
    for k, v in auth.items():
        conn.putheader(k, v)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    for chunk in body():
        conn.send(chunk)
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 204, resp.status
    staged = time.monotonic() - t0

    t1 = time.monotonic()
    status, data = request(
        conn, "POST", f"/v2/images/{image_id}/import",
        json.dumps({"method": {"name": "glance-direct"}}),
        {**auth, "Content-Type": "application/json"})
    assert status == 202, (status, data)
    while True:
        status, data = request(conn, "GET", f"/v2/images/{image_id}", headers=auth)
        image = json.loads(data)
        if image["status"] == "active" and not image.get("os_glance_import_task"):
            break
        if image["status"] == "queued":
            raise SystemExit(f"import failed: {image}")
        time.sleep(0.02)
    imported = time.monotonic() - t1
    request(conn, "DELETE", f"/v2/images/{image_id}", headers=auth)
    conn.close()
    return staged, imported, image["checksum"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = args.size_mib << 20
    pattern = bytes(range(256)) * (CHUNK // 256)
    expected = hashlib.md5()
    left = size
    while left:
        n = min(CHUNK, left)
        expected.update(pattern[:n])
        left -= n
    runs = []
    for _ in range(args.repeat):
        before = cpu_seconds(args.pid)
        staged, imported, checksum = run_once(args.url, size, pattern)
        after = cpu_seconds(args.pid)
        assert checksum == expected.hexdigest(), "checksum mismatch"
        runs.append({
            "stage_s": round(staged, 3),
            "import_s": round(imported, 3),
            "server_cpu_s": None if before is None else round(after - before, 3),
        })
        print(json.dumps(runs[-1]), file=sys.stderr)
    med = lambda k: statistics.median(r[k] for r in runs) if runs[0][k] is not None else None
    print(json.dumps({
        "url": args.url,
        "size_mib": args.size_mib,
        "runs": runs,
        "median_stage_s": med("stage_s"),
        "median_import_s": med("import_s"),
        "median_server_cpu_s": med("server_cpu_s"),
    }, indent=1))


if __name__ == "__main__":
    main()
