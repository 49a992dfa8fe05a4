"""Grid'5000 through execo: experiment config, platform model, OAR requests, planning.

One module per concept: ``config`` (the experiment TOML), ``session`` (execo's set-up and
``run``), ``platform`` (sites/clusters/nodes from the REST API), ``oarspec`` (OAR resource
strings and a port of OAR 2.5's grammar), ``plan`` (Funk's free/date/max slots), then
``state``, ``reserve``, ``hosts`` and the local ``lab`` of stand-ins.
"""
