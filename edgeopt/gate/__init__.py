"""Same-runner A/B latency gate: ``edgeopt gate`` (see edgeopt.gate.ab and edgeopt.gate.stats)."""
