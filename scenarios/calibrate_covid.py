#!/usr/bin/env python
"""Calibrating the COVID-19 model to a NYC neighbourhood's weekly cases, with a held-out forecast.

The same program as ``jaxsim calibrate_covid``, with the same options (``--help``); its code and
its Methods are in ``jaxsim/scenarios/calibrate_covid.py``.
"""

import sys

from jaxsim.scenarios.command import main

if __name__ == "__main__":
    sys.exit(main(["calibrate_covid", *sys.argv[1:]], exit_process=True))
