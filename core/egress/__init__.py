"""Outbound HTTP to addresses clients chose, guarded against SSRF: the address policy
(``core.egress.guard``) and the pinned client that sends through it (``core.egress.client``)."""
