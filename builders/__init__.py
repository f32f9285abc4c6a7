"""One module per AgentInstruct split: task sources, environment, prompt, action parser, reward and bar."""
