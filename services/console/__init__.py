"""The web console of citybase: server-rendered pages over the four services' HTTP APIs.

``api.py`` routes (a page or a form each), ``service.py`` what each page shows, ``forms.py`` what
each form sends, ``gateway.py`` the calls to the services with the caller's key, ``deps.py`` the
session, rendering and the origin check, ``labels.py`` and ``audit_view.py`` the words for the
platform's values and the audit trail, ``templates/`` the pages, in Chinese and English.
"""
