"""The locality market of buildings as plug-ins: average market clearing (AMC),
generation-to-demand-ratio prices (GDRMC) and peer-to-grid (P2G, no local market). Every
participant quotes its planned net demand (the ``quote`` strategy)."""

from __future__ import annotations

from lemgrid.coordinator.mechanisms import amc, gdrmc, p2g
from lemgrid.scenarios.mechanisms.base import Mechanism

CITATION = ("Transactive energy management systems (TEMS) with local energy market clearing "
            "strategies (AMC, GDRMC), Hindawi Mathematical Problems in Engineering (2023), "
            "article 3979662")

AMC = Mechanism(core=amc.CORE, strategy="quote", citation=CITATION,
                description="locality market, average market clearing prices")
GDRMC = Mechanism(core=gdrmc.CORE, strategy="quote", citation=CITATION,
                  description="locality market, generation-to-demand-ratio prices")
P2G = Mechanism(core=p2g.CORE, strategy="quote", citation=CITATION,
                description="no local market: every participant trades with the retailer",
                retail_baseline=True)
