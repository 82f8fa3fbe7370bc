"""HTTP routes in Chalice Blueprints, registered in ``app.py``."""
