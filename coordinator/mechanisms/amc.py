"""Average market clearing (AMC) of a locality market (docs/mechanisms/locality.md, RECON of
the paper's strategies 1 and 2; its equations are images).

With m = (λb + λs) / 2, on the shared demand D and generation G of a period:
  - importer locality (D > G): exporters get m; importers pay the volume-weighted mix
    of m for the locally supplied G and λb for the rest: π_im = (G·m + (D − G)·λb) / D;
  - exporter locality (G ≥ D): importers pay m; exporters get the mix of m for the D
    taken locally and λs for the rest: π_ex = (D·m + (G − D)·λs) / G.
The side that is short in the locality gets the fixed average whatever its share.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from lemgrid.coordinator.mechanisms import locality
from lemgrid.coordinator.mechanisms.base import MarketCore


def amc_prices(buy: np.ndarray, sell: np.ndarray, D: np.ndarray, G: np.ndarray):
    """(π_import, π_export) per period."""
    mid = (buy + sell) / 2
    safe_D, safe_G = np.where(D > 0, D, 1.0), np.where(G > 0, G, 1.0)
    importer = D > G
    pi_im = np.where(importer, (G * mid + (D - G) * buy) / safe_D, mid)
    pi_ex = np.where(importer, mid, (D * mid + (G - D) * sell) / safe_G)
    none = (D == 0) & (G == 0)  # nobody trades: the grid's own prices
    return np.where(none, buy, pi_im), np.where(none, sell, pi_ex)


class AMCParams(locality.LocalityParams):
    mechanism: Literal["amc"] = "amc"


def step(offers, state, params):
    return locality.step_locality(offers, state, params, amc_prices)


CORE = MarketCore(params_type=AMCParams, kinds=locality.KINDS, init=locality.init_locality,
                  step=step, clear=locality.clear_locality, settle=locality.settle_locality,
                  check_offer=locality.check_offer)
