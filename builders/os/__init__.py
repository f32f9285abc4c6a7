"""The os split: AgentBench OS tasks in a sandboxed Linux shell (the sandbox and its supervisor live here, only os
uses them)."""
