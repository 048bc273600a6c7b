#!/usr/bin/env python3
"""Python's `idna` (UTS #46 and IDNA 2008) as an oracle for the waitlist's domain handling.

Reads one JSON string a line on stdin (a domain as typed) and writes one JSON line each:
`{"ascii": "xn--..."}` or `{"error": "why"}`. Runs with what the waitlist uses: UTS #46 mapping,
non-transitional, STD3 rules.
"""

import json
import sys

import idna

for line in sys.stdin:
    domain = json.loads(line)
    try:
        answer = {"ascii": idna.encode(domain, uts46=True, std3_rules=True, transitional=False).decode("ascii")}
    except (idna.IDNAError, UnicodeError, ValueError) as error:
        answer = {"error": str(error)}
    print(json.dumps(answer), flush=True)
