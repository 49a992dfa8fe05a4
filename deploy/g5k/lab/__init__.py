"""The lab: local stand-ins of Grid'5000 (REST API, OAR, kadeploy, frontends, nodes).

``spec`` (the platform description), ``api`` (the fake REST API), ``jobs`` (OAR's job
state), ``oar`` (the fake frontend commands), ``proxy`` (one ``sshd -i`` per ssh
connection), ``faults`` (run-time fault switches), ``lab`` (``up``/``down``/``status``).
"""
