"""What the office does, whatever the audience: the actions and lookups that both the JSON API
(:mod:`api.routes`) and the web pages (:mod:`api.web`) offer. Each is one code path that
calls the domain packages and writes its audit row in the same transaction; the routes and
the pages only parse, check the role, call these and shape the answer. Routes and pages
never import each other: what they share is here."""
