#!/usr/bin/env python3
"""Reads our notifications with oslo.messaging's own notification listener, as an
OpenStack service (Ceilometer, Searchlight, ...) would, and checks one image's life.

usage: oslo_listener.py TRANSPORT_URL IMAGE_NAME [--timeout 60] [--exchange glance]

Listens on topic `notifications` of the exchange, keeps the events whose payload
names IMAGE_NAME (events of other images in the queue are skipped), and exits 0
once image.create, image.upload, image.activate and image.delete have arrived
with the payload fields Glance sends; 1 on a missing event or field, 2 on timeout.
A line "ready" on stdout says the listener is consuming.
"""

import argparse
import sys
import threading

from oslo_config import cfg
import oslo_messaging

WANTED = ["image.create", "image.upload", "image.activate", "image.delete"]
IMAGE_FIELDS = ["id", "name", "status", "created_at", "updated_at", "min_disk", "min_ram",
                "protected", "checksum", "owner", "disk_format", "container_format", "size",
                "virtual_size", "is_public", "visibility", "properties", "tags", "deleted",
                "deleted_at"]


class Endpoint:
    def __init__(self, name):
        self.name = name
        self.events = {}
        self.done = threading.Event()

    def _record(self, publisher_id, event_type, payload):
        if not isinstance(payload, dict) or payload.get("name") != self.name:
            return
        print(f"got {event_type} from {publisher_id}", flush=True)
        self.events.setdefault(event_type, payload)
        if all(e in self.events for e in WANTED):
            self.done.set()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record(publisher_id, event_type, payload)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record(publisher_id, event_type, payload)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("transport_url")
    ap.add_argument("image_name")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--exchange", default="glance")
    args = ap.parse_args()
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=args.transport_url)
    endpoint = Endpoint(args.image_name)
    targets = [oslo_messaging.Target(topic="notifications", exchange=args.exchange)]
    listener = oslo_messaging.get_notification_listener(
        transport, targets, [endpoint], executor="threading")
    listener.start()
    print("ready", flush=True)
    finished = endpoint.done.wait(args.timeout)
    listener.stop()
    listener.wait()
    if not finished:
        print(f"timeout: got {sorted(endpoint.events)}, want {WANTED}", flush=True)
        return 2
    failures = 0
    for event in WANTED:
        missing = [f for f in IMAGE_FIELDS if f not in endpoint.events[event]]
        if missing:
            print(f"{event}: payload lacks {missing}", flush=True)
            failures += 1
    if endpoint.events["image.delete"].get("deleted") is not True:
        print("image.delete: payload deleted is not true", flush=True)
        failures += 1
    if endpoint.events["image.activate"].get("status") != "active":
        print("image.activate: status is not active", flush=True)
        failures += 1
    print(f"oslo.messaging listener: {len(WANTED) - failures} passed, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
