"""Collection: the agent client, the local model server, the episode runner, the build and eval engine with its
journal, and the self-instruct loop."""
