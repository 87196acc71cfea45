"""The FastAPI application of ``medkit serve``: the bundles' API and the page.

- ``GET /`` the page (``static/index.html``, with its script and style beside it; nothing fetched elsewhere);
- ``GET /api/bundles`` each bundle's name, task, labels, accepted inputs;
- ``POST /api/predict/{bundle}`` (multipart field ``file``; ``?explain=true`` adds Grad-CAM overlays) the JSON of
  ``medkit.serve.results.summarize``;
- ``POST /api/explain/{bundle}`` (``?index=I``: which input of a zip) the Grad-CAM overlay, or a segmenter's mask
  outline, as PNG.

Every refusal is a 4xx answer ``{"error": "<one line>"}``; an unexpected fault is a 500 with one line, its traceback
only in the server's log. Each request's upload lives in a folder of its own under the server's temporary folder
and is deleted when the answer is ready.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from medkit.errors import MedkitError
from medkit.serve.results import summarize
from medkit.serve.service import BundleService
from medkit.serve.uploads import MultipartFile, UploadError, UploadLimits, mib, stage_upload

__all__ = ["create_app", "NOTICE", "STATIC_DIR"]

logger = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
NOTICE = "Research use only; not a medical device."


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _answer(work: Callable[[], Awaitable[Response]], work_dir: str) -> Response:
    """``work()``'s response, or the one-line error answer of what it raised (never a traceback, never a path of
    the server's folder: ``work_dir`` is left out of messages)."""

    def hide(text: str) -> str:
        return str(text).splitlines()[0].replace(work_dir + os.sep, "") if str(text) else "failed"

    try:
        return await work()
    except UploadError as e:
        return _error(e.status, hide(str(e)))
    except MedkitError as e:
        return _error(422, hide(str(e)))
    except Exception as e:  # a fault of the server, not of the upload: logged in full, one line to the client
        logger.exception("request failed")
        return _error(500, f"internal error: {type(e).__name__} (see the server's log)")


def create_app(services: Mapping[str, BundleService], work_dir: str, limits: UploadLimits | None = None) -> FastAPI:
    """The application serving ``services`` (bundle name -> loaded bundle).

    Args:
        services: the bundles, loaded once (``BundleService``).
        work_dir: the server's temporary folder; each request's upload goes in a folder of its own below it.
        limits: what one upload may bring.
    """
    limits = limits or UploadLimits()
    work_dir = os.path.abspath(work_dir)
    uploads = os.path.join(work_dir, "uploads")
    os.makedirs(uploads, exist_ok=True)
    app = FastAPI(title="medkit", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    @app.get("/api/bundles")
    async def bundles() -> dict:
        return {
            "bundles": [s.describe() for s in services.values()],
            "notice": NOTICE,
            "limits": {
                "max_upload_mib": limits.max_bytes >> 20,
                "max_zip_members": limits.max_zip_members,
                "max_unpacked_mib": limits.max_unpacked_bytes >> 20,
            },
        }

    async def run_upload(bundle: str, request: Request, explain: bool) -> dict:
        """Take the request's upload into a folder of its own, run the bundle on it, delete the folder; the summary."""
        service = services.get(bundle)
        if service is None:
            raise UploadError(f"{bundle}: no such bundle here (served: {', '.join(services)})", 404)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limits.max_bytes:
            raise UploadError(f"the upload is larger than the {mib(limits.max_bytes)} allowed", 413)
        folder = tempfile.mkdtemp(prefix="request-", dir=uploads)
        try:
            body = MultipartFile(request.headers.get("content-type", ""), folder, limits.max_bytes)
            try:
                async for chunk in request.stream():
                    body.feed(chunk)
            finally:
                body.close()
            path, name = body.finish()
            staged = await run_in_threadpool(stage_upload, path, name, folder, limits)
            result = await run_in_threadpool(service.predict, [staged], explain)
            summary = summarize(service, result, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if summary["items"] and summary["n_failed"] == len(summary["items"]):
            raise UploadError(summary["items"][0]["error"], 422)
        return summary

    @app.post("/api/predict/{bundle}")
    async def predict(bundle: str, request: Request, explain: bool = False) -> Response:
        async def work() -> Response:
            summary = await run_upload(bundle, request, explain)
            return JSONResponse(summary)

        return await _answer(work, work_dir)

    @app.post("/api/explain/{bundle}")
    async def explain(bundle: str, request: Request, index: int = 0) -> Response:
        async def work() -> Response:
            service = services.get(bundle)
            wants_gradcam = service is not None and service.family != "segmentation"
            summary = await run_upload(bundle, request, wants_gradcam)
            items = summary["items"]
            if not 0 <= index < len(items):
                raise UploadError(f"index {index}: the upload holds {len(items)} input(s)", 400)
            item = items[index]
            if item["error"]:
                raise UploadError(item["error"], 422)
            if not item["overlays"]:
                raise UploadError(f"{bundle}: no overlay for {item['name']}", 422)
            data = base64.b64decode(item["overlays"][0].split(",", 1)[1])
            return Response(data, media_type="image/png")

        return await _answer(work, work_dir)

    return app
