"""The market mechanisms' pure cores: one module each, holding its parameter model (the
scenario's ``market`` section for it) and its ``CORE`` (``base.MarketCore``). The plug-ins
that register them with the runtime are ``scenarios.mechanisms``."""
