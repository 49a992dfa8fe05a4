"""Campaigns: a grid of scenarios × seeds run on Dask, resumable, aggregated with 95 % CIs.

``load_campaign(CAMPAIGN.toml)`` expands the grid into points (``dvms.campaign.spec``),
``run_campaign(spec)`` runs the incomplete ones on Dask (``dvms.campaign.runner``), each
through ``run_point`` (``dvms.campaign.point``), and writes ``results.csv``,
``aggregate.csv`` and ``campaign.md`` (``dvms.campaign.aggregate``). docs/campaign.md.
"""

from __future__ import annotations

from dvms.campaign.aggregate import aggregate, flatten, mean_ci, t_quantile_975, write_results
from dvms.campaign.point import completed_summary, run_point
from dvms.campaign.runner import CampaignResult, run_campaign
from dvms.campaign.spec import CampaignSpec, PointSpec, load_campaign

__all__ = [
    "CampaignResult",
    "CampaignSpec",
    "PointSpec",
    "aggregate",
    "completed_summary",
    "flatten",
    "load_campaign",
    "mean_ci",
    "run_campaign",
    "run_point",
    "t_quantile_975",
    "write_results",
]
