"""`python -m shelm.dreamer RUN_DIR [--quiet] [--resume] [--parent PID]`: the child process of `shelm.dreamer.train`.

The code lives in `shelm.dreamer.worker`, imported under its own name, so that the env factory and the logger that
sheeprl instantiates from their dotted names share that module's state with the running trainer.
"""

import sys

from shelm.dreamer.worker import main

sys.exit(main())
