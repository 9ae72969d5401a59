"""Schemathesis hooks for scripts/schemathesis.sh (loaded via SCHEMATHESIS_HOOKS).

Glance's image PATCH takes JSON in media types of its own, which schemathesis
does not know how to send; they are plain JSON on the wire.
"""

import json

import schemathesis


@schemathesis.serializer(
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)
def json_patch(ctx, value):
    return {"data": json.dumps(value).encode()}
