"""agentinstruct: build AgentInstruct-style agent-tuning data in real environments and train AgentLM on it."""

__version__ = "0.1.0"

SPLITS: tuple[str, ...] = ("os", "db", "alfworld", "webshop", "kg", "mind2web")
"""The AgentInstruct splits, in THUDM's order."""
