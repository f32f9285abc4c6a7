"""The kg split: AgentBench's seven knowledge-graph tools as SPARQL, S-expressions, the embedded graph and questions."""
