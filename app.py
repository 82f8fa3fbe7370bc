"""Chalice wiring only: routes, the SQS worker and schedules. Filled in by the foundation work."""

from chalice import Chalice

app = Chalice(app_name="einvoice")


@app.route("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
