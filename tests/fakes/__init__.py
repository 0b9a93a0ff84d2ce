"""Fake provider servers on 127.0.0.1 that speak each provider's real wire format.

One module per provider (``brave``, ``whatsapp``, ``google_sheets``, ``r8r``, ``web``, ``payments``), each
recording what arrived in ``server.arrivals``; ``loopback`` holds the resolver table and the
dialer that refuses, loudly, anything but 127.0.0.1. Reusable by any test (the runtime
demo, the WhatsApp webhook issue).
"""
