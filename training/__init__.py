"""AgentLM training: mixture with general data, per-turn loss tokenization, the TRL SFT and DPO entry points,
preference pairs, recipes."""
