"""``python -m jaxsim``: the ``jaxsim`` command (:mod:`jaxsim.scenarios.command`)."""

import sys

if __name__ == "__main__":
    try:
        from jaxsim.scenarios.command import main
    except KeyboardInterrupt:  # Ctrl-C before the command's own handling starts
        from jaxsim.cli import interrupted

        interrupted()
    sys.exit(main())
