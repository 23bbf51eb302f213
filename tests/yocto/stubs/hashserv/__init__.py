# Empty stand-in for bitbake's hashserv package, which the PyPI bitbake-setup
# wheel does not ship.  bb.siggen imports it at module level; the in-process
# tests never use hash equivalence.
