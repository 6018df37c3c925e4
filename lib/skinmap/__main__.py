import sys

from skinmap.cli import main

sys.exit(main())
