"""The building blocks every part of the scenario schema uses: the strict model (no
unknown keys, no inf or NaN) and the constrained number types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

NonNeg = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Uniform(Strict):
    """A value drawn uniformly from [lo, hi] with the scenario's seed."""

    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self):
        lo, hi = self.uniform
        if lo > hi:
            raise ValueError(f"uniform: [{lo:g}, {hi:g}] has its low above its high; allowed: "
                             "[low, high] with low ≤ high")
        return self
