"""The HTTP detection service (API, cross-request batching, job store, review queue).

It imports `detector`; `detector` never imports it. Its modules arrive with the server issue.
"""
