from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
