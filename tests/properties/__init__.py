"""Property-based tests (Hypothesis) for every parser that sees attacker bytes."""
