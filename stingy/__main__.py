import sys

from stingy.cli import main

sys.exit(main())
