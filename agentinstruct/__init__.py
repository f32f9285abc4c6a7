"""agentinstruct: build AgentInstruct-style agent-tuning data in real environments and train AgentLM on it."""

__version__ = "0.1.0"
