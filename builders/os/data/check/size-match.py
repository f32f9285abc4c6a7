"""Pass (exit 0) when the answer (argv[1]) and the expected output (argv[2]) are the same size: a number with an
optional unit, 1024-based (B, K, KB, KiB, M, MB, MiB, G, ... T, P), e.g. 4096, 4K, 4.0K, 4 KiB."""
import re
import sys

UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4, "P": 1024 ** 5}
SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(?:I?B)?\s*$", re.IGNORECASE)


def size(text):
    found = SIZE.match(text.upper().replace("BYTES", "B").replace("BYTE", "B"))
    if not found:
        return None
    return round(float(found.group(1)) * UNITS[found.group(2).upper()])


answer, expected = size(sys.argv[1]), size(sys.argv[2])
sys.exit(0 if answer is not None and answer == expected else 1)
