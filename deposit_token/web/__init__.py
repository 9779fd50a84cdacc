"""The web front of the audit database: the auditors' console (login with password + TOTP) and the public
transparency portal, served by one ASGI app (FastAPI, Jinja2 pages, uPlot charts, server-sent events) over the
same SQLite or PostgreSQL database the indexer fills. docs/WEB.md describes it for operators.

A layer of its own: it imports the audit library (every figure comes from ``deposit_token.audit.query``),
chain and domain; only ``cli`` imports it.

    app         create_app: routes, security headers, error pages; open_database (migrates, never creates)
    server      serve (foreground) / BackgroundServer (a thread): uvicorn on a socket bound first
    public      the portal and /api/public/... (OpenAPI at /api/openapi.json, docs at /api/docs)
    console/    one module per console page (discovered; its docstring says how to add one)
    core/       what they are built on: configuration, security (accounts, sessions, CSRF, access log), i18n,
                rendering, cached reads, the live feed, the follower
    catalogue/  ko.json, en.json; templates/ (Jinja2); static/ (CSS, JS, vendor/: uPlot and htmx from npm)
"""
