"""Generation-to-demand-ratio market clearing (GDRMC) of a locality market
(docs/mechanisms/locality.md; the supply–demand-ratio rule).

With GDR = G / D on the shared demand D and generation G of a period:
  - GDR < 1 (importer locality): π_ex = λb·λs / ((λb − λs)·GDR + λs),
    π_im = π_ex·GDR + λb·(1 − GDR);
  - GDR ≥ 1 (exporter locality): π_im = π_ex = λs.
At GDR = 0 both prices are λb, at GDR = 1 both are λs: the prices move with the
locality's balance, so every participant's price reflects how much the locality
supplies itself. With a feed-in price λs = 0 the formula is 0/0 at GDR = 0; the prices
are its value there, λb.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from lemgrid.coordinator.mechanisms import locality
from lemgrid.coordinator.mechanisms.base import MarketCore


def gdrmc_prices(buy: np.ndarray, sell: np.ndarray, D: np.ndarray, G: np.ndarray):
    """(π_import, π_export) per period."""
    gdr = np.divide(G, D, out=np.full(len(D), np.inf), where=D > 0)
    ratio = np.minimum(gdr, 1.0)
    den = (buy - sell) * ratio + sell
    pi_ex = np.divide(buy * sell, den, out=np.array(buy, float), where=den != 0)
    pi_im = pi_ex * ratio + buy * (1 - ratio)
    exporter = gdr >= 1
    none = (D == 0) & (G == 0)
    pi_im = np.where(exporter, sell, pi_im)
    pi_ex = np.where(exporter, sell, pi_ex)
    return np.where(none, buy, pi_im), np.where(none, sell, pi_ex)


class GDRMCParams(locality.LocalityParams):
    mechanism: Literal["gdrmc"] = "gdrmc"


def step(offers, state, params):
    return locality.step_locality(offers, state, params, gdrmc_prices)


CORE = MarketCore(params_type=GDRMCParams, kinds=locality.KINDS, init=locality.init_locality,
                  step=step, clear=locality.clear_locality, settle=locality.settle_locality,
                  check_offer=locality.check_offer)
