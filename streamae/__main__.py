import sys

from streamae.cli import main

sys.exit(main())
