from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def run_session(agents: dict, mech, params, day: int = 0):
    """One day's market in this process: every agent registers, answers every signal; the
    session after its last round."""
    from coordinator.session import MarketSession

    session = MarketSession(mech, params, day=day)
    for agent in agents.values():
        session.register(agent.register(day))
    signals = session.start()
    while signals:
        for name, sig in signals.items():
            session.offer(agents[name].on_signal(sig))
        signals = session.close_round()
    return session
