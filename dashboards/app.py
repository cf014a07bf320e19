"""Entry point for ``streamlit run dashboards/app.py``.

The page itself lives in the package (``streamae/dashboard/app.py``), so an
installed streamae can run it too; this file only calls it.
"""

from streamae.dashboard.app import main

main()
