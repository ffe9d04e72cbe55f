"""Request and response shapes, one module per resource.

``jobs``, ``uploads``, ``batches``, ``webhooks`` and ``monitoring``, and ``errors`` for the error
body they all share.
"""
