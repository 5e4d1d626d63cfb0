"""The distribution grid: networks, the AC power flow and its simulator, the branch-flow
and DC models the network operator uses."""

# The AC power flow's solvers (``grid.solver``): lemgrid's Newton-Raphson on the
# admittance matrices pandapower builds, its results computed on arrays
# (``grid.newton``; pandapower's own where the net has elements it does not model);
# pandapower's Newton-Raphson with its result tables; or lightsim2grid's (the same
# equations in C++). All give the same voltages to 1e-6 pu, checked in the tests. The
# first is the default.
POWER_FLOW_SOLVERS = ("lemgrid", "pandapower", "lightsim2grid")
