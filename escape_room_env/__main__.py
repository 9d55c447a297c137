"""``python -m escape_room_env``: the ``escape-room`` command line (``torchrun -m escape_room_env train``)."""

import sys

from escape_room_env.cli import main

sys.exit(main())
