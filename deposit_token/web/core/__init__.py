"""What the web pages are built on (everything but the app itself, the public portal and the console's pages,
which import this and are imported by nothing here):

    config      WebConfig, Follow
    state       what the running app holds (app.state.web), NavItem
    auth        login/logout routes, console_router (login + CSRF on every route), roles
    accounts    auditor accounts: Argon2, TOTP, login throttling
    sessions    server-side sessions (the cookie's SHA-256 only), Principal
    accesslog   the append-only access log
    tables      the web_* tables (migration 0003 of the audit database)
    reader      the audit library's reports and public cells, cached per indexer checkpoint
    live        the newest payments for server-sent events
    follow      the server's own indexer thread (--follow)
    i18n        Korean (default) and English catalogues, amounts and KST times
    pages       Jinja2 environment and render
"""
