"""The mind2web split: Mind2Web's released tasks (or the package's recordings), ranked candidates, the page pruned
around them, and AgentBench's multiple-choice rounds with its step metrics."""
