"""``python -m agentinstruct.cli ...``: the same command line as ``agentinstruct ...``."""

import sys

from agentinstruct.cli import main

sys.exit(main())
