"""Node services (behaviours) that run on every node: monitor, vivaldi, centralised scheduler.

- ``dvms.services.vivaldi``: ``VivaldiService`` (name ``"vivaldi"``), its config and messages.
"""

__all__: list[str] = []
