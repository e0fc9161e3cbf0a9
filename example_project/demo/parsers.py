"""The demo API's JSON parser: DRF's, with the size and depth of the body bounded.

DRF's ``JSONParser`` catches ``ValueError`` but not ``RecursionError``, so a body of a thousand
nested brackets was an HTML 500. This one decodes through ``oauth_cc.common.json_input`` (bounded
depth and size, strict UTF-8, no duplicate members or NaN) and answers a DRF ``ParseError``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from oauth_cc.common import json_input

#: A report is a title and a body: two levels; generous for any API body.
MAX_DEPTH = 32


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440
        data = stream.read(limit + 1) if stream is not None else b""
        try:
            return json_input.loads(data, max_bytes=limit, max_depth=MAX_DEPTH, what="The request body")
        except json_input.JSONInputError as exc:
            raise ParseError(str(exc)) from None
