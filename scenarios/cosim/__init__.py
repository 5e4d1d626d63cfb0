"""Co-simulators: two examples of ordinary mosaik simulators that a scenario's
``cosimulators`` section starts and links to agents or the grid (``csv_profile``,
``monitor``; see ``scenarios/csv_profiles.yaml``), and what any co-simulator's links rest
on: naming the entities it creates (``entities``) and converting the units of the values
they pass (``units``). The runner's side is ``scenarios.run.cosimulators``."""
