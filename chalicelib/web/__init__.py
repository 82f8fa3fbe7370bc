"""The customer's pages: Jinja2 templates (autoescaped), inline CSS, no script, no external asset."""
