"""Run Autobahn|Testsuite's ``wstest`` from a ``pip install --target`` folder (Python 2.7).

Usage: ``python2.7 wstest_launcher.py SITE_DIR [wstest arguments]``

``SITE_DIR`` goes through :func:`site.addsitedir`, not ``PYTHONPATH``: the folder's
``*-nspkg.pth`` files must run, or the ``zope`` namespace package (zope.interface,
needed by Twisted) cannot be imported. This file must stay valid Python 2.7.
"""

import site
import sys


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: wstest_launcher.py SITE_DIR [wstest arguments]\n")
        return 2
    site.addsitedir(sys.argv.pop(1))
    sys.argv[0] = "wstest"
    from autobahntestsuite.wstest import run

    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
