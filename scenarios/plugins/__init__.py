"""The built-in mechanisms' plug-ins (``scenarios.mechanisms`` registers them by name):
each module wires a pure core of ``coordinator.mechanisms`` to its agent strategy, its
centralized counterpart, its result tables and its report."""
