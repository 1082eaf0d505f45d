"""What the tests share: the servers they start (DNS, Dovecot, SMTP, Chromium, Celery and proxies to
cut), builders of reports and emails, the cast of organizations and people, and the hostile corpus.

Assertions in these modules are rewritten like the tests' own (registered in tests/__init__.py).
"""
