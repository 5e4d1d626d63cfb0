from pathlib import Path

from .inprocess_day import run_session  # noqa: F401 - tests import it from here

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
