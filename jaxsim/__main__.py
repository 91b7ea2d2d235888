"""``python -m jaxsim``: the ``jaxsim`` command (:mod:`jaxsim.scenarios.command`)."""

import sys

from jaxsim.scenarios.command import main

if __name__ == "__main__":
    sys.exit(main())
