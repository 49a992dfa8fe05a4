"""The user-facing application, the top layer: the ``dvms`` CLI, its commands, the live
dashboard. It may import ``sim`` and ``deploy``; nothing below it imports it."""
