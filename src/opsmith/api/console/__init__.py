"""The web console of `opsmith serve`: server-rendered pages over the same services as the API.

Pages are Jinja2 templates (autoescaped) filled from the services; the few changes a person makes
(plan, approve, reject, cancel, run) go from a small script in `static/` to the REST API with the
session cookie and the CSRF header, so the rules and the errors are the API's own. Nothing is
loaded from anywhere but this server.
"""
