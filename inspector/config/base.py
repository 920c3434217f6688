"""The base of every config model: unknown keys are errors, values are frozen.

Where it sits: the floor of ``inspector/config/``; every section module derives from
``Section``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config block: unknown keys are errors (fail closed), instances are frozen, and
    every number is finite (``.inf`` for a timeout or a poll period is refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
