import sys

from fitboard.cli import main

sys.exit(main())
