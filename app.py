"""WSGI entry point for Zappa (`app_function: app.app`) and local runs."""
from api import create_app

app = create_app()
