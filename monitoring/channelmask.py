"""What a notification channel's URL shows: Apprise's privacy form of it, secrets hidden.

Apprise knows which parts of a URL are secret only once it has loaded every one of its plugins (about 19 MB in a
web worker: oauthlib, cryptography and some 270 plugin modules). The web worker shows masks but sends nothing on
its own schedule, so it asks a short-lived child process for them, once per set of URLs, and keeps the answer. A
process that has Apprise loaded already (the worker, which sends) masks in its own memory. Both run `mask_url`.

    python -m monitoring.channelmask < urls.json     # a JSON list of URLs in, their masks (a JSON list) out

The URLs travel on stdin, never on the command line, which every user of the machine can read.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .logredact import MIN_PATH_SECRET

logger = logging.getLogger("monitoring")

# Apprise URLs whose privacy form leaves the path as it is, though the path is the secret (a webhook's token, the
# ntfy topic anyone may subscribe to): their path parts are masked too.
PATH_SECRET_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms", "ntfy", "ntfys"}
PROJECT = Path(__file__).resolve().parents[1]  # where `monitoring` imports from, for the child process
CHILD_TIMEOUT = 30  # seconds; Apprise loads in about 0.4 s


def mask_url(url: str) -> str:
    """Apprise's privacy form of the URL (tokens and passwords hidden), without its option query. Where that form
    keeps a secret in plain sight (a webhook's token in its path, an ntfy topic), that part is masked as Apprise
    masks a token ("s...t"); a webhook's short path parts ("/hook") stay readable."""
    import apprise  # here, not at the top: importing this module must not load Apprise (see the docstring)

    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:  # a URL Apprise chokes on is shown by its scheme alone
        plugin = None
    if not plugin:
        return url.split("://", 1)[0] + "://…" if "://" in url else "(not a URL)"
    masked = plugin.url(privacy=True).split("?", 1)[0]
    scheme, _, rest = masked.partition("://")
    if scheme.lower() not in PATH_SECRET_SCHEMES:
        return masked
    host, slash, path = rest.partition("/")
    if not slash and scheme.lower().startswith("ntfy") and "." not in host and ":" not in host:
        return f"{scheme}://{plugin.pprint(host, privacy=True, safe='')}"  # ntfy://topic: the host is the topic
    shortest = 1 if scheme.lower().startswith("ntfy") else MIN_PATH_SECRET  # a topic is the secret, whatever its length
    parts = [plugin.pprint(part, privacy=True, safe="") if len(part) >= shortest else part for part in path.split("/")]
    return f"{scheme}://{host}{slash}{'/'.join(parts)}"


def mask_urls(urls: Sequence[str]) -> list[str]:
    """The masks of these URLs, in order: from a child process unless Apprise is loaded here already."""
    return list(_masks(tuple(urls)))


@functools.lru_cache(maxsize=16)
def _masks(urls: tuple[str, ...]) -> tuple[str, ...]:
    if urls and "apprise" not in sys.modules:
        masks = _masks_from_child(urls)
        if masks is not None:
            return masks
    return tuple(mask_url(url) for url in urls)


def _masks_from_child(urls: tuple[str, ...]) -> tuple[str, ...] | None:
    """The child's answer, or None (logged, without the URLs) when it gave none: then Apprise is loaded here."""
    command = [sys.executable, "-m", "monitoring.channelmask"]
    try:
        done = subprocess.run(
            command, input=json.dumps(urls), capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=PROJECT
        )
        masks = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        masks, why = None, type(exc).__name__
    else:
        why = f"exit status {done.returncode}" if done.returncode else "an answer that is not one mask per URL"
    if isinstance(masks, list) and len(masks) == len(urls) and all(isinstance(m, str) for m in masks):
        return tuple(masks)
    logger.warning("Masking the notification URLs in a child process failed (%s): loading Apprise here", why)
    return None


def main() -> int:
    urls = json.load(sys.stdin)
    if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
        print("expected a JSON list of URLs on stdin", file=sys.stderr)
        return 2
    json.dump([mask_url(url) for url in urls], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
