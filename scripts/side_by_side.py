#!/usr/bin/env python3
"""Side-by-side check of two OpenStack Images API v2 endpoints.

Sends the same sequence of requests to two servers (ours and a real Glance),
each against images the script creates on that server (ids are substituted
per server), and reports per request the differences in:

  * status code;
  * the set of top-level JSON keys of the body (for an image body that is the
    image's keys) and, for every top-level list of objects (images, members,
    versions, ...), the keys of its first element;
  * Content-Type (case and blanks ignored);
  * presence of the headers in CHECK_HEADERS (and, for the few in
    VALUE_HEADERS, their value as well);
  * for downloads, the body bytes; for schemas, the parsed JSON.

Every request that is expected to fail is sent twice: once as is and once
with `Accept: application/json` (the row name then ends in "[json]").

The whole sequence runs on one server, its images are deleted, then it runs on
the other; so pointing both options at the same server is a valid self-test
(it must report 0 failed).

usage: side_by_side.py --ours http://127.0.0.1:9393 --glance http://127.0.0.1:9292
       [--verbose] [--timeout 30]

Output: one line per request (name, status ours/glance, OK or DIFF with the
differing aspects), then "N passed, M failed". Exit code 0, or 2 when a
server cannot be reached. Standard library only.
"""

import argparse
import hashlib
import http.client
import json
import socket
import sys
import urllib.parse
import uuid

CHECK_HEADERS = [
    "Location",
    "Content-MD5",
    "Content-Range",
    "Accept-Patch",
    "Allow",
    "x-openstack-request-id",
    # Glance also sends these two on image create; clients may read them.
    "OpenStack-image-import-methods",
    "OpenStack-image-store-ids",
]
# headers whose value (not only presence) is compared; deterministic ones only
VALUE_HEADERS = {"content-range", "accept-patch", "allow", "content-md5"}

PATCH_CT = "application/openstack-images-v2.1-json-patch"
JSON_CT = "application/json"
OCTET = "application/octet-stream"
MIB = 1024 * 1024
# deterministic 1 MiB payload
PAYLOAD = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(MIB))


class Unreachable(Exception):
    pass


class Resp:
    def __init__(self, status=None, headers=None, body=b"", error=None,
                 skipped=None):
        self.status = status
        self.headers = headers or {}      # lower-cased name -> value
        self.body = body
        self.error = error                # "timeout", "connection reset", ...
        self.skipped = skipped            # reason when not sent
        self._json = None
        self._json_done = False

    @property
    def label(self):
        if self.skipped:
            return "SKIP"
        if self.error:
            return "ERR"
        return str(self.status)

    def json(self):
        if not self._json_done:
            self._json_done = True
            try:
                self._json = json.loads(self.body.decode("utf-8")) if self.body else None
            except (ValueError, UnicodeDecodeError):
                self._json = None
        return self._json


class Server:
    def __init__(self, base, timeout):
        u = urllib.parse.urlsplit(base if "://" in base else "http://" + base)
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.base = base

    def request(self, method, path, headers=None, body=None):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        hdrs = {"X-Auth-Token": "x"}
        hdrs.update(headers or {})
        try:
            conn.request(method, self.prefix + path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            h = {}
            for k, v in r.getheaders():
                k = k.lower()
                h[k] = h[k] + ", " + v if k in h else v
            return Resp(r.status, h, data)
        except (ConnectionRefusedError, socket.gaierror) as e:
            raise Unreachable("%s: %s" % (self.base, e))
        except socket.timeout:
            return Resp(error="timeout after %ss" % self.timeout)
        except (OSError, http.client.HTTPException) as e:
            return Resp(error="%s: %s" % (type(e).__name__, e))
        finally:
            conn.close()


# --------------------------------------------------------------------------
# The sequence. Each step: name, method, path (str with {placeholders} filled
# from the per-server context, or a callable ctx -> path), optional headers,
# body (bytes, or a Python object sent as JSON), save (ctx, resp) -> None,
# err (expected to fail: also sent with Accept: application/json),
# cmp ("bytes": compare body bytes; "json": compare parsed JSON).
# --------------------------------------------------------------------------

def S(name, method, path, body=None, headers=None, save=None, err=False, cmp=None):
    return dict(name=name, method=method, path=path, body=body, headers=headers or {},
                save=save, err=err, cmp=cmp)


def save_id(key):
    def f(ctx, r):
        j = r.json()
        if r.status in (200, 201) and isinstance(j, dict) and isinstance(j.get("id"), str):
            ctx[key] = j["id"]
    return f


def save_next(ctx, r):
    j = r.json()
    if isinstance(j, dict) and isinstance(j.get("next"), str):
        ctx["next"] = j["next"]


def create(body):
    return dict(body=body, headers={"Content-Type": JSON_CT})


def patch(ops, ct=PATCH_CT):
    return dict(body=ops, headers={"Content-Type": ct})


def steps():
    img = "/v2/images"
    A = img + "/{A}"          # main image: uploaded, downloaded, tagged
    Q = img + "/{Q}"          # stays queued
    P = img + "/{P}"          # private
    SH = img + "/{S}"         # shared, for members
    R = img + "/{R}"          # protected
    member = "sbs-project-1"
    L = [
        S("GET /", "GET", "/"),
        S("GET /versions", "GET", "/versions"),
        S("list (before create)", "GET", img),

        S("create main", "POST", img, save=save_id("A"),
          **create({"name": "sbs-main", "disk_format": "raw",
                    "container_format": "bare", "foo": "bar"})),
        S("create queued", "POST", img, save=save_id("Q"), **create({"name": "sbs-queued"})),
        S("create private", "POST", img, save=save_id("P"),
          **create({"name": "sbs-private", "visibility": "private"})),
        S("create shared", "POST", img, save=save_id("S"),
          **create({"name": "sbs-shared", "visibility": "shared"})),
        S("create protected", "POST", img, save=save_id("R"),
          **create({"name": "sbs-protected", "protected": True})),
        S("create with id", "POST", img, save=save_id("I"),
          **create({"name": "sbs-withid", "id": "{NEWID}"})),
        S("create dup id", "POST", img, err=True,
          **create({"name": "sbs-withid", "id": "{NEWID}"})),
        S("create read-only attr", "POST", img, err=True,
          **create({"name": "sbs-bad", "status": "active"})),
        S("create bad visibility", "POST", img, err=True,
          **create({"name": "sbs-bad", "visibility": "bogus"})),
        S("create non-string extra", "POST", img, err=True,
          **create({"name": "sbs-bad", "extra": 123})),
        S("create reserved os_glance_", "POST", img, err=True,
          **create({"name": "sbs-bad", "os_glance_foo": "x"})),
        S("create malformed JSON", "POST", img, err=True,
          body=b'{"name": "sbs-bad", ', headers={"Content-Type": JSON_CT}),

        S("list (with data)", "GET", img),
        S("list limit=1", "GET", img + "?limit=1", save=save_next),
        S("list follow next", "GET", lambda c: c["next"]),
        S("list name filter", "GET", img + "?name=sbs-main"),
        S("list bad limit", "GET", img + "?limit=-1", err=True),
        S("list bad sort_key", "GET", img + "?sort_key=bogus", err=True),
        S("list unknown marker", "GET", img + "?marker={RANDID}", err=True),

        S("show", "GET", A),
        S("show missing", "GET", img + "/{RANDID}", err=True),
        S("show 40-char id", "GET", img + "/" + "a" * 40, err=True),

        S("patch replace name", "PATCH", A,
          **patch([{"op": "replace", "path": "/name", "value": "sbs-main-2"}])),
        S("patch add prop", "PATCH", A,
          **patch([{"op": "add", "path": "/bar", "value": "baz"}])),
        S("patch remove prop", "PATCH", A, **patch([{"op": "remove", "path": "/bar"}])),
        S("patch remove missing prop", "PATCH", A, err=True,
          **patch([{"op": "remove", "path": "/nope"}])),
        S("patch wrong content-type", "PATCH", A, err=True,
          **patch([{"op": "replace", "path": "/name", "value": "x"}], ct=JSON_CT)),
        S("patch remove core attr", "PATCH", A, err=True,
          **patch([{"op": "remove", "path": "/disk_format"}])),
        S("patch replace read-only", "PATCH", A, err=True,
          **patch([{"op": "replace", "path": "/status", "value": "active"}])),
        S("patch body not a list", "PATCH", A, err=True,
          **patch({"op": "replace", "path": "/name", "value": "x"})),

        S("download queued", "GET", Q + "/file"),
        S("upload 1 MiB", "PUT", A + "/file", body=PAYLOAD,
          headers={"Content-Type": OCTET}),
        S("upload again", "PUT", A + "/file", body=PAYLOAD, err=True,
          headers={"Content-Type": OCTET}),
        S("upload wrong content-type", "PUT", Q + "/file", body=b"hello", err=True,
          headers={"Content-Type": JSON_CT}),
        S("show after upload", "GET", A),
        S("download full", "GET", A + "/file", cmp="bytes"),
        S("download Range 0-9", "GET", A + "/file", cmp="bytes",
          headers={"Range": "bytes=0-9"}),
        S("download Range -5", "GET", A + "/file", cmp="bytes",
          headers={"Range": "bytes=-5"}),
        S("download Range unsatisfiable", "GET", A + "/file", err=True,
          headers={"Range": "bytes=%d-%d" % (2 * MIB, 2 * MIB + 10)}),
        S("download multi-range", "GET", A + "/file",
          headers={"Range": "bytes=0-1,5-6"}),

        S("tag put", "PUT", A + "/tags/sbs-tag"),
        S("show with tag", "GET", A),
        S("tag delete", "DELETE", A + "/tags/sbs-tag"),
        S("tag delete missing", "DELETE", A + "/tags/sbs-tag", err=True),

        S("member add", "POST", SH + "/members", **create({"member": member})),
        S("member add dup", "POST", SH + "/members", err=True, **create({"member": member})),
        S("member add no body key", "POST", SH + "/members", err=True, **create({})),
        S("member list", "GET", SH + "/members"),
        S("member get", "GET", SH + "/members/" + member),
        S("member update accepted", "PUT", SH + "/members/" + member,
          **create({"status": "accepted"})),
        S("member update bad status", "PUT", SH + "/members/" + member, err=True,
          **create({"status": "bogus"})),
        S("member delete", "DELETE", SH + "/members/" + member),
        S("member get deleted", "GET", SH + "/members/" + member, err=True),
        S("member add on private", "POST", P + "/members", err=True,
          **create({"member": member})),

        S("deactivate queued", "POST", Q + "/actions/deactivate", err=True),
        S("reactivate queued", "POST", Q + "/actions/reactivate", err=True),
        S("deactivate active", "POST", A + "/actions/deactivate"),
        # admin (every request here) may still download a deactivated image
        S("download deactivated", "GET", A + "/file", cmp="bytes"),
        S("reactivate", "POST", A + "/actions/reactivate"),
        S("download reactivated", "GET", A + "/file", cmp="bytes"),

        S("delete", "DELETE", Q),
        S("delete again", "DELETE", Q, err=True),
        S("show deleted", "GET", Q, err=True),
        S("delete protected", "DELETE", R, err=True),

        S("schema image", "GET", "/v2/schemas/image", cmp="json"),
        S("schema images", "GET", "/v2/schemas/images", cmp="json"),
        S("schema member", "GET", "/v2/schemas/member", cmp="json"),
        S("schema members", "GET", "/v2/schemas/members", cmp="json"),

        S("wrong method DELETE /v2/images", "DELETE", img, err=True),
        S("wrong method PUT image", "PUT", A, err=True, **create({"name": "x"})),
        S("unknown route /v2/nope", "GET", "/v2/nope", err=True),
        S("body on GET", "GET", A, err=True, body=b'{"x": 1}',
          headers={"Content-Type": JSON_CT}),
    ]
    out = []
    for st in L:
        out.append(st)
        if st["err"]:
            j = dict(st)
            j["name"] = st["name"] + " [json]"
            j["headers"] = dict(st["headers"], Accept=JSON_CT)
            j["save"] = None
            out.append(j)
    return out


class MissingRef(Exception):
    pass


def fill(obj, ctx):
    """Substitute {KEY} placeholders in strings (recursively)."""
    if isinstance(obj, str):
        out = obj
        while "{" in out:
            i = out.index("{")
            j = out.find("}", i)
            if j < 0:
                break
            key = out[i + 1:j]
            if key not in ctx:
                raise MissingRef(key)
            out = out[:i] + ctx[key] + out[j + 1:]
        return out
    if isinstance(obj, list):
        return [fill(x, ctx) for x in obj]
    if isinstance(obj, dict):
        return {k: fill(v, ctx) for k, v in obj.items()}
    return obj


def run_sequence(server, seq):
    ctx = {"NEWID": str(uuid.uuid4()), "RANDID": str(uuid.uuid4())}
    created = []
    results = []
    try:
        for st in seq:
            try:
                path = st["path"](ctx) if callable(st["path"]) else fill(st["path"], ctx)
                body = st["body"]
                if body is not None and not isinstance(body, bytes):
                    body = json.dumps(fill(body, ctx)).encode()
            except (MissingRef, KeyError) as e:
                results.append(Resp(skipped="no %s from an earlier step" % e))
                continue
            r = server.request(st["method"], path, st["headers"], body)
            results.append(r)
            if st["save"]:
                st["save"](ctx, r)
            # any image that got created, expected or not, is deleted at the end
            j = r.json()
            if (st["method"] == "POST" and path.split("?")[0] == "/v2/images"
                    and r.status in (200, 201) and isinstance(j, dict)
                    and isinstance(j.get("id"), str) and j["id"] not in created):
                created.append(j["id"])
    finally:
        cleanup(server, created)
    return results


def cleanup(server, ids):
    for i in ids:
        try:
            server.request("PATCH", "/v2/images/" + i, {"Content-Type": PATCH_CT},
                           json.dumps([{"op": "replace", "path": "/protected",
                                        "value": False}]).encode())
            r = server.request("DELETE", "/v2/images/" + i)
            if r.status not in (204, 404):
                print("warning: cleanup of %s on %s answered %s" % (i, server.base, r.label),
                      file=sys.stderr)
        except Unreachable as e:
            print("warning: cleanup: %s" % e, file=sys.stderr)
            return


# --------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------

def norm_ct(v):
    return None if v is None else "".join(v.split()).lower()


def keyset_diff(label, a, b):
    if a == b:
        return None
    oa = sorted(a - b)
    ob = sorted(b - a)
    parts = []
    if oa:
        parts.append("ours+" + ",".join(oa))
    if ob:
        parts.append("glance+" + ",".join(ob))
    return "%s(%s)" % (label, " ".join(parts))


def compare(st, a, b):
    diffs = []
    if a.skipped or b.skipped:
        if not (a.skipped and b.skipped):
            diffs.append("skipped on %s (%s)" % ("ours" if a.skipped else "glance",
                                                 a.skipped or b.skipped))
        return diffs
    if a.error or b.error:
        if a.error != b.error:
            diffs.append("transport(ours=%s glance=%s)" % (a.error, b.error))
        return diffs
    if a.status != b.status:
        diffs.append("status")
    ja, jb = a.json(), b.json()
    if (ja is None) != (jb is None):
        diffs.append("json(ours=%s glance=%s)" % ("yes" if ja is not None else "no",
                                                 "yes" if jb is not None else "no"))
    elif isinstance(ja, dict) and isinstance(jb, dict):
        d = keyset_diff("keys", set(ja), set(jb))
        if d:
            diffs.append(d)
        for k in sorted(set(ja) & set(jb)):
            va, vb = ja[k], jb[k]
            if isinstance(va, list) and isinstance(vb, list):
                fa = va[0] if va and isinstance(va[0], dict) else None
                fb = vb[0] if vb and isinstance(vb[0], dict) else None
                if (fa is None) != (fb is None):
                    diffs.append("%s[0](ours=%s glance=%s)" % (
                        k, "object" if fa is not None else "none",
                        "object" if fb is not None else "none"))
                elif fa is not None:
                    d = keyset_diff("%s[0].keys" % k, set(fa), set(fb))
                    if d:
                        diffs.append(d)
    elif ja is not None and type(ja) is not type(jb):
        diffs.append("json type(ours=%s glance=%s)" % (type(ja).__name__, type(jb).__name__))
    ca, cb = norm_ct(a.headers.get("content-type")), norm_ct(b.headers.get("content-type"))
    if ca != cb:
        diffs.append("content-type(ours=%s glance=%s)" % (ca, cb))
    for h in CHECK_HEADERS:
        hl = h.lower()
        pa, pb = hl in a.headers, hl in b.headers
        if pa != pb:
            diffs.append("%s(%s only)" % (h, "ours" if pa else "glance"))
        elif pa and hl in VALUE_HEADERS:
            va = " ".join(a.headers[hl].split())
            vb = " ".join(b.headers[hl].split())
            if va != vb:
                diffs.append("%s value(ours=%r glance=%r)" % (h, va, vb))
    if st["cmp"] == "bytes" and a.body != b.body:
        diffs.append("body(ours %d B md5 %s, glance %d B md5 %s)" % (
            len(a.body), hashlib.md5(a.body).hexdigest()[:8],
            len(b.body), hashlib.md5(b.body).hexdigest()[:8]))
    if st["cmp"] == "json" and ja != jb:
        diffs.append("body json differs")
    return diffs


def snippet(r, n=300):
    if r.skipped:
        return "skipped: " + r.skipped
    if r.error:
        return "error: " + r.error
    b = r.body[:n]
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        s = repr(b)
    s = " ".join(s.split())
    return "%s ct=%s body=%s%s" % (r.status, r.headers.get("content-type"), s,
                                   "..." if len(r.body) > n else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", required=True, help="base URL of our server")
    ap.add_argument("--glance", required=True, help="base URL of the real Glance")
    ap.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    ap.add_argument("--verbose", "-v", action="store_true",
                    help="after each DIFF line, print both responses (truncated)")
    args = ap.parse_args()

    ours = Server(args.ours, args.timeout)
    glance = Server(args.glance, args.timeout)
    for srv in (ours, glance):
        try:
            r = srv.request("GET", "/versions")
        except Unreachable as e:
            print("unreachable: %s" % e, file=sys.stderr)
            return 2
        if r.error:
            print("unreachable: %s: %s" % (srv.base, r.error), file=sys.stderr)
            return 2

    seq = steps()
    try:
        res_ours = run_sequence(ours, seq)
        res_glance = run_sequence(glance, seq)
    except Unreachable as e:
        print("unreachable: %s" % e, file=sys.stderr)
        return 2

    width = max(len(st["name"]) for st in seq)
    print("%-*s  %6s %6s  %s" % (width, "request", "ours", "glance", "result"))
    passed = failed = 0
    for st, a, b in zip(seq, res_ours, res_glance):
        diffs = compare(st, a, b)
        if diffs:
            failed += 1
            verdict = "DIFF " + "; ".join(diffs)
        else:
            passed += 1
            verdict = "OK"
        print("%-*s  %6s %6s  %s" % (width, st["name"], a.label, b.label, verdict))
        if diffs and args.verbose:
            print("    ours:   " + snippet(a))
            print("    glance: " + snippet(b))
    print("%d passed, %d failed" % (passed, failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
