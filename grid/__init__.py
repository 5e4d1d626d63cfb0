"""The distribution grid: networks, the AC power flow and its simulator, the branch-flow
and DC models the network operator uses."""

# The AC power flow's solvers (``grid.solver``): pandapower's Newton-Raphson, or
# lightsim2grid's (the same equations in C++; the same voltages to 1e-6 pu, checked in
# the tests). The first is the default.
POWER_FLOW_SOLVERS = ("pandapower", "lightsim2grid")
