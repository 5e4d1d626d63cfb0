"""A coordinator session's day played in this process, for tests and the wire fuzzer."""

from lemgrid.coordinator.session import MarketSession


def run_session(agents: dict, mech, params, day: int = 0, settle: bool = False
                ) -> MarketSession:
    """One day's market in this process: every agent (name -> an object with
    ``register(day)`` and ``on_signal(signal)``) registers and answers every signal; with
    ``settle``, the day is cleared, every agent meters it (``meters(clearing)``) and it is
    settled. The session after its last round, or after its settlement."""
    session = MarketSession(mech, params, day=day)
    for agent in agents.values():
        session.register(agent.register(day))
    signals = session.start()
    while signals:
        for name, signal in signals.items():
            session.offer(agents[name].on_signal(signal))
        signals = session.close_round()
    if settle:
        for name, clearing in session.clear().items():
            for reading in agents[name].meters(clearing):
                session.meter(reading)
        session.settle()
    return session
