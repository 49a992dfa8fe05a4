"""Run on a lab hypervisor (over ssh, in its session: its netns, its libvirtd as
``LIBVIRT_DEFAULT_URI``): one live migration through ``LibvirtHypervisor.migrate`` in
``copy-inc`` mode, as an agent does it. Prints the trace events, then the result, as JSON
lines. ``python tests/g5k_hv_migrate.py SRC_NODE VM DST_NODE DST_TCP_URI``."""

from __future__ import annotations

import json
import os
import queue
import sys

from deploy.libvirt_hv import LibvirtHypervisor
from dvms.hypervisor import MigrationResult


def main() -> int:
    src, vm, dst, dst_uri = sys.argv[1:5]
    results: queue.Queue[MigrationResult] = queue.Queue()
    events: list[dict[str, object]] = []
    hv = LibvirtHypervisor(src, os.environ.get("LIBVIRT_DEFAULT_URI", ""),
                           deliver=lambda _to, r: results.put(r),  # type: ignore[arg-type]
                           peer_uris={dst: dst_uri}, trace=events.append,
                           migration_storage="copy-inc", migration_timeout_s=100)
    hv.migrate(vm, dst, (src, "test"))
    result = results.get(timeout=110)
    for e in events:
        print(json.dumps(e))
    print(json.dumps({"result": {"ok": result.ok, "reason": result.reason,
                                 "duration_s": result.duration_s}}))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
