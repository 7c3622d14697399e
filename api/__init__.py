"""Threat-intel relay for Cisco SecureX / XDR: one Flask app, four providers."""
import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def create_app():
    """The WSGI app: relay routes un-prefixed and under `/<provider>`."""
    from api import providers, telemetry
    from api.routes import bp

    # urllib3 logs request URLs at DEBUG, and some providers take the API key
    # as a query parameter: keep it quiet whatever the Lambda's log level.
    logging.getLogger("urllib3").setLevel(logging.WARNING)

    app = Flask(__name__)
    app.url_map.strict_slashes = False
    # `//` in a path would answer a 308 whose Location is built from the Host
    # header; unmerged, such a path is a plain JSON 404.
    app.url_map.merge_slashes = False
    app.json.sort_keys = False
    app.register_blueprint(bp)
    prefix = "/<any({}):provider>".format(", ".join(providers.NAMES))
    app.register_blueprint(bp, url_prefix=prefix, name="provider")
    telemetry.install(app)

    @app.errorhandler(HTTPException)
    def http_error(error):
        # 404/405 and friends as JSON, in the contract's error shape.
        code = (error.name or "error").lower()
        body = {"errors": [{"type": "fatal", "code": code,
                            "message": error.description or error.name}]}
        return jsonify(body), error.code

    @app.errorhandler(Exception)
    def unexpected(error):
        # Never a 500 for the platform: log the traceback, answer an envelope.
        log.exception("unhandled error")
        body = {"errors": [{"type": "fatal", "code": "internal error",
                            "message": "Unexpected error in the relay; the "
                                       "relay's logs have the details."}]}
        return jsonify(body), 200

    return app
