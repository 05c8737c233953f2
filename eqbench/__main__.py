"""``python -m eqbench …`` (and ``torchrun … -m eqbench train …``): the ``eqbench`` command."""

import sys

from .cli import main

sys.exit(main())
