"""All eight platforms over real HTTP against the running local stack (`make run`).

The all-platform store is registered the way an operator does it (`einvoice stores put FILE` against the
running stack's state dir), its secrets are put into the stack's embedded AWS; then every platform's
genuine paid event gets the answer that platform expects, and a forged one gets 401.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.order_keys import order_key
from tests.support import platform_events as pe
from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    """(status, content type, body) of a POST; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


@pytest.fixture(scope="module")
def store_id(local_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The all-platform store in the running stack's registry, its eight secrets in its embedded AWS."""
    store_id = f"e2e-all-{uuid.uuid4().hex[:8]}"
    sm = local_stack.client("secretsmanager")
    for platform in pe.PLATFORMS:
        sm.create_secret(Name=pe.secret_name(store_id, platform), SecretString=json.dumps(pe.secret_values(platform)))
    path: Path = tmp_path_factory.mktemp("platform-store") / f"{store_id}.json"
    path.write_text(json.dumps(pe.test_store(store_id), ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "EINVOICE_STATE_DIR": str(local_stack.state_dir)}
    for var in ("STORES_TABLE", "AWS_ENDPOINT_URL"):
        env.pop(var, None)
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "stores", "put", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"stored {store_id}" in result.stdout
    return store_id


@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_a_genuine_payment_gets_the_platforms_answer_over_http(local_stack: Any, store_id: str, platform: str) -> None:
    order_id = f"{platform}-{uuid.uuid4().hex[:10]}"
    body, headers = pe.paid(platform, order_id, "88.00")

    status, content_type, answer = http_post(f"{local_stack.api}/webhooks/{platform}/{store_id}", body, headers)

    expected = pe.expected_reply(platform, order_key=order_key(store_id, platform, order_id))
    assert status == expected.status, answer
    assert content_type.split(";")[0].strip() == expected.content_type
    if isinstance(expected.body, str):
        assert answer.decode() == expected.body
    else:
        assert json.loads(answer) == expected.body


@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_a_forged_payment_is_401_over_http(local_stack: Any, store_id: str, platform: str) -> None:
    order_id = f"{platform}-{uuid.uuid4().hex[:10]}"
    body, headers = pe.paid(platform, order_id, "88.00")

    status, _, answer = http_post(
        f"{local_stack.api}/webhooks/{platform}/{store_id}", pe.tampered(platform, body, order_id), headers
    )

    assert status == 401, answer
    assert json.loads(answer) == {"error": "invalid_signature", "reason": "bad_signature"}
