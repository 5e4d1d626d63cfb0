"""A convex QP kept between the rounds of an iterative market: OSQP (Stellato et al.
2020, an operator-splitting method) with its KKT factorization and its last primal and
dual iterates kept.

A consensus market's peer solves the same problem every round with new linear costs and,
when ρ changes, a new Hessian diagonal (``agents.admm_peer``). HiGHS's active-set QP
starts every solve from scratch (HiGHS 1.16 has no QP hot start), ~70 ms for a faia2021
peer; OSQP keeps the factorization of its KKT matrix while only the costs change (it is
refactored when the diagonal changes) and starts from the previous round's iterates.

The problem: min ½ xᵀ diag(h) x + cᵀx s.t. col_lower ≤ x ≤ col_upper, row_lower ≤ A x ≤
row_upper (the form HiGHS holds), passed to OSQP as one constraint block [I; A]. The
tolerances are tight (``TOLERANCE``): the market's residuals are measured on these
solutions. OSQP meets bounds to its tolerance, not exactly (a flow of 3e-8 kW where the
bound is 0), so a value within ``SNAP`` of a column bound is put on it: a peer's plan has
no phantom flows, and buying and selling at once is told from noise as with HiGHS. A
solve that does not end ``solved`` returns None, and the caller falls back to HiGHS.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-8  # OSQP's absolute and relative tolerances
SNAP = 1e-6  # a value this close to a column bound is put on it (the units of x: kW, kWh)
MAX_ITER = 20_000  # ~20 × a warm-started round's iterations: a stalled solve stops here
PRELOAD = ("osqp",)  # what a process solving these QPs imports (osqp imports scipy.sparse)
QP_METHODS = ("osqp", "highs")  # the consensus peers' QP method, the default first


class KeptQP:
    """One QP held by OSQP between solves; ``update`` then ``solve``."""

    def __init__(self, diag, cost, a, *, col_lower, col_upper, row_lower, row_upper,
                 infinity: float):
        import osqp  # here: a process whose market solves no QPs never loads it
        import scipy.sparse as sp

        n = len(cost)
        self._status_solved = osqp.SolverStatus.OSQP_SOLVED
        self._diag = np.asarray(diag, float).copy()
        # every diagonal entry kept in the pattern (explicit zeros too): OSQP updates the
        # Hessian's values in place only on the pattern it was set up with
        p = sp.csc_matrix((self._diag, np.arange(n), np.arange(n + 1)), shape=(n, n))
        a = sp.vstack([sp.identity(n, format="csc"), sp.csc_matrix(a)], format="csc")
        lower = np.concatenate([col_lower, row_lower]).astype(float)
        upper = np.concatenate([col_upper, row_upper]).astype(float)
        lower[lower <= -infinity] = -np.inf
        upper[upper >= infinity] = np.inf
        self._lower, self._upper = lower[:n], upper[:n]
        self._solver = osqp.OSQP()
        self._solver.setup(P=p, q=np.asarray(cost, float), A=a, l=lower, u=upper,
                           verbose=False, eps_abs=TOLERANCE, eps_rel=TOLERANCE,
                           max_iter=MAX_ITER, warm_starting=True, polishing=False)
        self.iterations = 0  # of the last solve

    def update(self, cost: np.ndarray, diag: np.ndarray) -> None:
        """The next solve's linear costs and Hessian diagonal (refactored only when the
        diagonal changed)."""
        diag = np.asarray(diag, float)
        if not np.array_equal(diag, self._diag):
            self._diag = diag.copy()
            self._solver.update(q=np.asarray(cost, float), Px=self._diag)
        else:
            self._solver.update(q=np.asarray(cost, float))

    def solve(self) -> np.ndarray | None:
        """The solution from the last iterates, or None when OSQP did not solve it."""
        result = self._solver.solve(raise_error=False)
        self.iterations = int(result.info.iter)
        if result.info.status_val != self._status_solved:
            return None
        x = np.asarray(result.x, float)
        for bound in (self._lower, self._upper):
            x = np.where(np.abs(x - bound) <= SNAP, bound, x)
        return x
