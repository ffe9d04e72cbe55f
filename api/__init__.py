"""HTTP API (FastAPI): routes, schemas, auth, rate limits, the web page. Never imports torch."""
