#!/usr/bin/env python
"""COVID-19 in New York City neighbourhoods, with isolation behaviour.

The same program as ``jaxsim covid_nyc``, with the same options (``--help``); its code and
its Methods are in ``jaxsim/scenarios/covid_nyc.py``.
"""

import sys

from jaxsim.scenarios.command import main

if __name__ == "__main__":
    sys.exit(main(["covid_nyc", *sys.argv[1:]], exit_process=True))
