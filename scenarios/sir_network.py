#!/usr/bin/env python
"""A user's SIR model on a random contact network, a million agents by default.

The same program as ``jaxsim sir_network``, with the same options (``--help``); its code and
its Methods are in ``jaxsim/scenarios/sir_network.py``.
"""

import sys

from jaxsim.scenarios.command import main

if __name__ == "__main__":
    sys.exit(main(["sir_network", *sys.argv[1:]], exit_process=True))
