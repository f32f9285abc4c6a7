"""Evaluating a checkpoint (``agentinstruct evaluate``): the held-in splits, the general benchmarks, their results.

``results`` holds one figure per benchmark with its confidence interval and the files, table, plot and comparison
made of them; ``heldin`` runs the six AgentBench-style splits on their evaluation tasks; ``general`` runs
lm-eval-harness; ``serve`` puts a model behind an OpenAI-compatible endpoint; ``modelcard`` writes the results
into a Hub model card as ``model-index``.
"""
