#!/usr/bin/env python
"""Policy counterfactuals for a NYC neighbourhood: what if isolation, closures, vaccination or testing had been different, and what do the next weeks look like under each?

The same program as ``jaxsim counterfactual_isolation``, with the same options (``--help``); its code and
its Methods are in ``jaxsim/scenarios/counterfactual_isolation.py``.
"""

import sys

from jaxsim.scenarios.command import main

if __name__ == "__main__":
    sys.exit(main(["counterfactual_isolation", *sys.argv[1:]], exit_process=True))
