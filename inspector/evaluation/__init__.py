"""``inspector eval``: offline evaluation of a recipe on labelled images, with every
threshold swept. Beside the flow (like ``replay``): it reuses steps 3-6 and changes
nothing in them. ``labels`` reads the truth, ``sweep`` is the pure threshold arithmetic,
``run`` drives the models and writes the report, plot, raw scores and recipe.
"""

from __future__ import annotations

#: ``--choose`` values → the operating point of ``sweep.Sweep.operating_points``.
CHOICES = {
    "zero-escape": "lowest overkill at 0 escapes",
    "zero-overkill": "lowest escape at 0 overkill",
    "balanced": "lowest escape + overkill",
}
