"""``dvms reproduce vmplaces`` and ``europar2014`` in full (``--quick``: their quick forms).

Runs both shipped campaigns on a ``LocalCluster`` into ``bench/results/reproduce/<name>``
(resumable: a re-run only runs what is missing) and returns their comparison rows and
Markdown tables (ours ± 95 % CI beside the published values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dvms.campaign.reproduce import reproduce

OUT = Path(__file__).parent / "results" / "reproduce"


def main(quick: bool = False) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name in ("vmplaces", "europar2014"):
        out = OUT / (f"{name}-quick" if quick else name)
        done = reproduce(name, quick=quick, out_dir=out, progress=False)
        figures[name] = {
            "points": len(done.campaign.ran) + len(done.campaign.skipped),
            "failed": done.campaign.failed,
            "wall_s": round(done.campaign.wall_s, 1),
            "rows": done.rows,
            "markdown": done.markdown,
        }
    return figures


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(main("--quick" in sys.argv), indent=2, default=str))
