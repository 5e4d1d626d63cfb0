"""``python -m lemgrid.scenarios.schema`` writes the scenario's JSON schema to
``SCHEMA_PATH``, ``scenarios/scenario.schema.json`` (checked in)."""

import json

from lemgrid.scenarios.schema import SCHEMA_PATH, json_schema

if __name__ == "__main__":
    SCHEMA_PATH.write_text(json.dumps(json_schema(), indent=2) + "\n")
