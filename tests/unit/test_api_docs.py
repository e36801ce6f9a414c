"""The API documentation pages work offline: Swagger UI and ReDoc come from the package's own
files (``fastapi-offline``), never from a CDN, and load without a token as ``/docs`` does."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from judge.api.app import create_app
from judge.api.auth import DOCS_ASSETS_PATH
from tests.support.clock import service_settings

TOKENS = "judge:docs-judge-token,admin:docs-admin-token"


def test_docs_pages_load_only_the_services_own_files() -> None:
    with TestClient(create_app(service_settings(api_tokens=TOKENS))) as client:
        for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
                             ("/redoc", ("redoc.standalone.js",))):
            answer = client.get(page)  # no token: the pages are open, as before
            assert answer.status_code == 200, page
            html = answer.text
            # Every script, stylesheet and icon the page loads: none from another host.
            loaded = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html)
            loaded += re.findall(r"url:\s*'([^']+)'", html)
            assert loaded, page
            assert not [u for u in loaded if "://" in u or u.startswith("//")], loaded
            assert "fonts.googleapis.com" not in html
            for asset in assets:
                url = f"{DOCS_ASSETS_PATH}/{asset}"
                assert url in loaded, (page, asset)
                served = client.get(url)
                assert served.status_code == 200, url
                assert len(served.content) > 10_000  # the real bundle, not a stub
        # The open mount serves those files only: other paths still need a token.
        assert client.get("/v1/configs").status_code == 401
        assert client.get(f"{DOCS_ASSETS_PATH}/missing.js").status_code == 404
