#!/usr/bin/env python
"""The limits of agency: isolation from a heuristic, LLM archetypes at several granularities
and a language model per agent, compared on NYC neighbourhoods' held-out weekly cases, on
Google mobility and on cost.

The same program as ``jaxsim agency_study``, with the same options (``--help``); its code
and its Methods are in ``jaxsim/scenarios/agency_study.py``.
"""

import sys

from jaxsim.scenarios.command import main

if __name__ == "__main__":
    sys.exit(main(["agency_study", *sys.argv[1:]], exit_process=True))
