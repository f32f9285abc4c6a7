"""Pass (exit 0) when the answer (argv[1]) equals the expected output (argv[2]), surrounding whitespace and
line-ending style aside."""
import sys


def norm(text):
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


sys.exit(0 if norm(sys.argv[1]) == norm(sys.argv[2]) else 1)
