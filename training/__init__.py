"""AgentLM training: mixture with general data, per-turn loss tokenization, TRL SFT entry point and recipes."""
