"""The web app: the public pages and JSON API, the archive, and the staff pages (/admin).

`create_app` builds the FastAPI app from settings, a database, a clock and a `send`
function; `newsletter.web.server.serve` runs it under uvicorn.
"""
