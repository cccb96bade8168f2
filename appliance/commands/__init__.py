"""Sub-commands of ``flashstation``: one module per area, each with ``register(subparsers)``.

Modules here sit on top of the package: they may import anything below them,
nothing below imports them.
"""
