"""Node services (behaviours) that run on every node: monitor, vivaldi, centralised scheduler."""

__all__: list[str] = []
