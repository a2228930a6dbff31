import sys

from worldgen.cli import main

sys.exit(main())
