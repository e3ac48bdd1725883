"""The public web pages and JSON API of the audience: sign up, confirm, leave, change.

`create_app` builds the FastAPI app from settings, a database, a clock and a `send`
function; `newsletter.web.server.serve` runs it under uvicorn.
"""
