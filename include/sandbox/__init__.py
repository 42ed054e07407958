"""Local emulators of the Facturama, Clientify and FacturaDirecta APIs (``python -m include.sandbox``).

See docs/sandbox.md for ports, credentials, the ``/_sandbox/`` control surface and every assumption
switch.
"""
