"""coplay: the shared base every other package may import (errors, version).

The toolkit itself lives in the top-level packages ``envs``, ``agents``, ``memory`` and
``scenarios``; this package holds only what all of them need and none of them owns.
"""

__version__ = "0.1.0"
