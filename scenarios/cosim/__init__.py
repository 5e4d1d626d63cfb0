"""Example co-simulators: ordinary mosaik simulators that a scenario's ``cosimulators``
section starts and links to agents or the grid (see ``scenarios/csv_profiles.yaml``)."""
