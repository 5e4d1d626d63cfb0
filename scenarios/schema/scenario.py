"""``Scenario``: the whole scenario, its parts (``models``) and, once every part is valid,
the checks across them (``checks``)."""

from __future__ import annotations

import re

from pydantic import Field, PrivateAttr, field_validator, model_validator

from lemgrid.scenarios.schema.checks import (
    _check_calendar,
    _check_chp,
    _check_cosims,
    _check_flexible,
    _check_keys,
    _check_lengths,
    _check_mechanism,
    _check_names,
    _check_network,
    _check_size,
    _check_times,
    _check_trips,
)
from lemgrid.scenarios.schema.models import (
    DEFAULT_MECHANISM,
    Community,
    Cosimulator,
    Explicit,
    ForecastError,
    GridConfig,
    Horizon,
    Market,
    Runtime,
    Solver,
    Strict,
    Tariffs,
    Template,
    _default_market,
)
from lemgrid.scenarios.schema.profiles import Site, Weather


class Scenario(Strict):
    name: str
    description: str = ""
    seed: int = Field(ge=0)
    horizon: Horizon = Horizon()
    site: Site | None = Field(None, description="where the community is (PVWatts arrays); "
                              "null: nowhere in particular")
    weather: Weather | None = Field(None, description="the sky every PVWatts array shares")
    tariffs: Tariffs = Tariffs()
    market: Market = Field(default_factory=_default_market)
    solver: Solver = Solver()
    grid: GridConfig = GridConfig()
    runtime: Runtime = Runtime()
    forecast_error: ForecastError = ForecastError()
    community: Community = Community()
    templates: list[Template] = []  # noqa: RUF012 - a pydantic field (Strict is a BaseModel)
    agents: list[Explicit] = []  # noqa: RUF012 - a pydantic field
    cosimulators: list[Cosimulator] = Field(default_factory=list, description="other mosaik "
                                            "simulators, linked to agents or the grid")
    _source: str = PrivateAttr("scenario")  # the file it came from, for error lines

    @property
    def source(self) -> str:
        return self._source

    @model_validator(mode="before")
    @classmethod
    def _named_mechanism(cls, raw):
        """A market that names no mechanism has the default one."""
        market = raw.get("market") if isinstance(raw, dict) else None
        if isinstance(market, dict) and "mechanism" not in market:
            raw = {**raw, "market": {"mechanism": DEFAULT_MECHANISM, **market}}
        return raw

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if name.strip() in ("", ".", "..") or re.search(r"[/\\\x00-\x1f]", name):
            raise ValueError(f"{name!r} cannot name the results folder results/<name>; "
                             "allowed: a name without '/', '\\' or control characters")
        return name

    @model_validator(mode="after")
    def _cross_checks(self):
        problems = [*_check_keys(self), *_check_lengths(self), *_check_cosims(self),
                    *_check_flexible(self), *_check_mechanism(self), *_check_times(self),
                    *_check_trips(self), *_check_network(self), *_check_chp(self),
                    *_check_calendar(self)]
        problems = problems or _check_size(self) or _check_names(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self
