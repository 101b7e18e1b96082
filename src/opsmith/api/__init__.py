"""The REST API, live events and web console of `opsmith serve`: a thin face over the services."""
