#!/usr/bin/env python
"""COVID-19 and the labour market of New York City's five boroughs, month by month.

The same program as ``jaxsim nyc_economy``, with the same options (``--help``); its code and
its Methods are in ``jaxsim/scenarios/nyc_economy.py``.
"""

import sys

from jaxsim.scenarios.command import main

if __name__ == "__main__":
    sys.exit(main(["nyc_economy", *sys.argv[1:]], exit_process=True))
