#!/usr/bin/python3
"""The layer rule of docs/architecture.md, checked on every build: each layer
includes only the layers below it (internal headers "layer/x.h" and public
headers <chatcore/x.h> alike). An upward include fails the build, naming the
file, the line and the rule.

    check_layers.py SOURCE_ROOT STAMP_FILE

A public header that is not in PUBLIC below fails too: say which layer a new
header belongs to when you add it."""
import os
import re
import sys

# The layers, and what each may include (besides itself). "interfaces" are the
# backend method tables (and the loop contract they use); the seam that edge
# and service share (session.h) is part of the protocol.
BELOW = {
    "core": [],
    "protocol": ["core"],
    "primitives": ["core", "protocol"],
    "interfaces": ["core"],
    "gateway": ["core", "protocol", "primitives"],
    "service": ["core", "protocol", "primitives", "interfaces"],
    "edge": ["core", "protocol", "primitives", "gateway"],
    "backends": ["core", "protocol", "primitives", "interfaces"],
    "transport": ["core", "protocol", "primitives", "gateway", "interfaces"],
    "link": ["core", "protocol", "primitives", "interfaces", "gateway",
             "service", "edge"],
    # the embedded server (server.h): everything above, wired on a thread
    "server": ["core", "protocol", "primitives", "interfaces", "gateway",
               "service", "edge", "link", "backends", "transport"],
    "umbrella": None,  # chatcore.h includes everything, and nothing includes it
}

# Public headers (include/chatcore/) by layer.
PUBLIC = {
    "common.h": "core", "error.h": "core", "buf.h": "core", "metrics.h": "core",
    "log.h": "core",
    "protocol.h": "protocol",
    "seq.h": "primitives", "ratelimit.h": "primitives", "fanout.h": "primitives",
    "jwt.h": "primitives",
    "storage.h": "interfaces", "queue.h": "interfaces", "presence.h": "interfaces",
    "loop.h": "interfaces",
    "session.h": "protocol",
    "http.h": "gateway", "gateway.h": "gateway",
    "service.h": "service",
    "edge.h": "edge",
    "memory.h": "backends", "sqlite.h": "backends", "postgres.h": "backends", "redis.h": "backends", "nats.h": "backends",
    "memnet.h": "transport", "uv.h": "transport",
    "link.h": "link", "http_api.h": "link",
    "server.h": "server",
    "chatcore.h": "umbrella",
}

# Internal folders (lib/<dir>/) by layer.
INTERNAL = {
    "core": "core", "protocol": "protocol", "primitives": "primitives",
    "gateway": "gateway", "service": "service", "edge": "edge", "link": "link",
    "backends": "backends", "transport": "transport", "server": "server",
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def allowed(src_layer, dst_layer):
    below = BELOW[src_layer]
    return dst_layer == src_layer or below is None or dst_layer in below


def check_file(path, layer, errors, engine=None):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            kind, name = m.groups()
            if name.startswith("chatcore/v1/") or name == "chatcore_config.h":
                continue  # the generated protocol structs, the build's config
            if name.startswith("chatcore/"):
                header = name[len("chatcore/"):]
                dst = PUBLIC.get(header)
                if dst is None:
                    errors.append(f"{path}:{n}: <{name}> is not in scripts/check_layers.py's "
                                  "PUBLIC table: say which layer it belongs to")
                    continue
                if dst == "umbrella" and layer != "umbrella":
                    errors.append(f"{path}:{n}: <chatcore/chatcore.h> is for programs, "
                                  "not for the library")
                    continue
            elif kind == '"' and "/" in name:
                top = name.split("/")[0]
                dst = INTERNAL.get(top)
                if dst is None:
                    continue
                shared = name.count("/") == 1  # backends/x.h: shared by every engine
                if dst in ("backends", "transport") and engine and not shared and \
                        not name.startswith(f"{top}/{engine}/"):
                    errors.append(f"{path}:{n}: \"{name}\": one {top[:-1]} engine must not "
                                  f"include another's headers")
                    continue
            else:
                continue  # system headers, same-folder headers
            if not allowed(layer, dst):
                errors.append(f"{path}:{n}: the {layer} layer includes {name} ({dst}): "
                              f"{layer} may include only {', '.join(BELOW[layer] or [])}")


def main():
    root, stamp = sys.argv[1], sys.argv[2]
    errors = []
    inc = os.path.join(root, "include", "chatcore")
    for header in sorted(os.listdir(inc)):
        if not header.endswith(".h"):
            continue
        layer = PUBLIC.get(header)
        if layer is None:
            errors.append(f"{os.path.join(inc, header)}: not in scripts/check_layers.py's "
                          "PUBLIC table: say which layer it belongs to")
            continue
        check_file(os.path.join(inc, header), layer, errors)
    lib = os.path.join(root, "lib")
    for top in sorted(os.listdir(lib)):
        layer = INTERNAL.get(top)
        if layer is None:
            continue
        for dirpath, _, files in os.walk(os.path.join(lib, top)):
            rel = os.path.relpath(dirpath, lib).split(os.sep)
            engine = rel[1] if layer in ("backends", "transport") and len(rel) > 1 else None
            for name in sorted(files):
                if name.endswith((".c", ".h")):
                    check_file(os.path.join(dirpath, name), layer, errors, engine)
    if errors:
        print("layer rule broken (docs/architecture.md):", file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        sys.exit(1)
    with open(stamp, "w") as f:
        f.write("layers ok\n")


if __name__ == "__main__":
    main()
